/**
 * The console's only door to the gateway: the pasted credential (sessionStorage, gone with the tab), JSON
 * requests with it, and the live feed. The feed is read with fetch() rather than EventSource because
 * EventSource cannot send the Authorization or X-API-Key header; the same SSE framing is parsed here, and the
 * last OUT sequence is sent back as Last-Event-ID on reconnect, as EventSource would.
 */

export type Role = 'viewer' | 'operator' | 'admin'
export interface Me {
  type: 'user' | 'key' | 'dev'
  id: string
  role: Role
  fleets?: string[]
  sites?: string[]
}
export interface Settings {
  site: string
  tileUrl: string | null
  sites: string[]
}
export type Json = Record<string, unknown>

const KEY = 'pitwall.credential'

/** A JWT is three base64url parts; anything else is taken for a service API key. */
export function credentialHeaders(credential: string): Record<string, string> {
  const c = credential.trim()
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(c)
    ? { authorization: `Bearer ${c}` }
    : { 'x-api-key': c }
}

export const saved = (): string | null => sessionStorage.getItem(KEY)
export const save = (c: string): void => {
  sessionStorage.setItem(KEY, c)
}
export const forget = (): void => {
  sessionStorage.removeItem(KEY)
}

/** A refused or failed request: the gateway's `{code, message}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

let headers: Record<string, string> = {}
export function useCredential(c: string): void {
  headers = credentialHeaders(c)
}

export async function api<T = Json>(
  path: string,
  init: { method?: 'GET' | 'POST' | 'PATCH'; body?: unknown } = {},
): Promise<T> {
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    headers: { ...headers, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  })
  const text = await res.text()
  const body = text === '' ? {} : (JSON.parse(text) as Json)
  if (!res.ok)
    throw new ApiError(res.status, String(body.code ?? `HTTP_${res.status}`), String(body.message ?? res.statusText))
  return body as T
}

export async function settings(): Promise<Settings> {
  const res = await fetch('/console/config.json')
  return (await res.json()) as Settings
}

export interface LiveEvent {
  id: number | null
  event: string
  data: Json
}

/**
 * Follows `/v1/live?<query>` until `signal` aborts: calls `on` with each event, reconnects after `retry` ms
 * (the server's `retry:` line) resuming after the last id. `status` reports connected/reconnecting.
 */
export function follow(
  query: string,
  on: (e: LiveEvent) => void,
  signal: AbortSignal,
  status?: (up: boolean) => void,
): void {
  let last: number | null = null
  let retry = 2_000
  const once = async (): Promise<void> => {
    const res = await fetch(`/v1/live?${query}`, {
      headers: { ...headers, ...(last === null ? {} : { 'last-event-id': String(last) }) },
      signal,
    })
    if (!res.ok || !res.body) throw new ApiError(res.status, 'GW_ERR_LIVE', `live feed refused: ${res.status}`)
    status?.(true)
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    let buf = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      buf += value
      let i: number
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, i)
        buf = buf.slice(i + 2)
        let id: number | null = null
        let event = 'message'
        let data = ''
        for (const line of frame.split('\n')) {
          if (line.startsWith('id: ')) id = Number(line.slice(4))
          else if (line.startsWith('event: ')) event = line.slice(7)
          else if (line.startsWith('data: ')) data += line.slice(6)
          else if (line.startsWith('retry: ')) retry = Number(line.slice(7)) || retry
        }
        if (data === '') continue
        if (id !== null) last = id
        on({ id, event, data: JSON.parse(data) as Json })
      }
    }
  }
  void (async () => {
    while (!signal.aborted) {
      try {
        await once()
      } catch (err) {
        if (signal.aborted) return
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return
      }
      status?.(false)
      await new Promise((r) => setTimeout(r, retry))
    }
  })()
}

export const enc = encodeURIComponent
export const fmtTime = (iso: unknown): string => {
  if (iso === null || iso === undefined) return '—'
  const d = new Date(typeof iso === 'number' ? iso : String(iso))
  return Number.isNaN(d.getTime())
    ? '—'
    : d.toLocaleString(undefined, {
        month: 'short',
        day: 'numeric',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
      })
}
export const ago = (ms: number): string => {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`
}
export const num = (v: unknown, digits = 0): string =>
  typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '—'
