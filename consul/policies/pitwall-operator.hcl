# ACL policy of the operator running `pitwall deploy` and the Ansible consul role: manage the prepared queries of
# pitwall and read everything of pitwall; no ACL, operator or agent write.
query_prefix "pitwall-" {
  policy = "write"
}
service_prefix "" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}
key_prefix "pitwall/" {
  policy = "read"
}
