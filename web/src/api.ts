// The HTTP API (README "HTTP API"): same origin, `Authorization: Token <jwt>`, errors as
// `{"errors": {"<field>": ["<message>"]}}`. A 401 on an authenticated call refreshes the session
// once (one refresh at a time, across tabs too: a rotated refresh token presented twice revokes
// the whole family) and retries; a refused refresh ends the session.

import type { components } from './api-schema';

// The shapes are the gateway's OpenAPI document's (gateway/openapi.json), generated into
// api-schema.d.ts by the build: a field the API does not have fails the type check.
type Schemas = components['schemas'];
export type User = Schemas['UserView'];
export type Profile = Schemas['ProfileView'];
export type Message = Schemas['MessageView'];
export type Member = Schemas['MemberView'];
export type Conversation = Schemas['ConversationView'];
export type Notification = Schemas['NotificationView'];
export type Preferences = Schemas['PreferencesView'];
export type Report = Schemas['ReportView'];
export type Pin = Schemas['PinView'];
type UserEnvelope = Schemas['UserEnvelope'];
type ProfileEnvelope = Schemas['ProfileEnvelope'];
type ConversationEnvelope = Schemas['ConversationEnvelope'];
type MessageEnvelope = Schemas['MessageEnvelope'];
export type Attachment = Schemas['AttachmentView'];

export class ApiError extends Error {
  constructor(
    public status: number,
    public errors: Record<string, string[]>,
  ) {
    super(
      Object.entries(errors)
        .map(([field, problems]) => `${field} ${problems.join(', ')}`)
        .join('; ') || `HTTP ${status}`,
    );
  }
}

const KEY = 'soulchat.session';

export interface Session {
  token: string;
  refresh_token: string;
  user: User;
}

let session: Session | null = load();
let onEnded: (reason: string) => void = () => {};

function load(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

function save(s: Session | null) {
  session = s;
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
}

export const currentSession = () => session;

/** Called once the session cannot be renewed (revoked, expired, logged out elsewhere). */
export function onSessionEnded(f: (reason: string) => void) {
  onEnded = f;
}

export function setUser(user: User) {
  if (!session) return;
  save({ ...session, token: user.token || session.token, user: { ...session.user, ...user } });
}

export function startSession(user: User) {
  save({ token: user.token, refresh_token: user.refresh_token ?? '', user });
}

export function endSession() {
  save(null);
}

let refreshing: Promise<boolean> | null = null;

/** Renews the access token once for everyone waiting on it. */
export function refresh(failedToken: string): Promise<boolean> {
  if (!refreshing) {
    refreshing = withLock(async () => {
      // Another tab (or an earlier call) may have rotated already: use its result.
      const stored = load();
      if (!stored) return false;
      if (stored.token !== failedToken) {
        session = stored;
        return true;
      }
      const res = await fetch('/api/users/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: stored.refresh_token }),
      }).catch(() => null);
      if (!res) throw new ApiError(0, { network: ['is unreachable'] });
      if (!res.ok) return false;
      const { user } = (await res.json()) as { user: User };
      save({ token: user.token, refresh_token: user.refresh_token ?? stored.refresh_token, user: { ...stored.user, ...user } });
      return true;
    }).finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

function withLock<T>(f: () => Promise<T>): Promise<T> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  return locks ? (locks.request('soulchat-refresh', f) as Promise<T>) : f();
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export async function api<T = unknown>(method: Method, path: string, body?: unknown, auth = true): Promise<T> {
  const res = await request(method, path, body, auth);
  if (res.status === 204) return undefined as T;
  return (await res.json().catch(() => ({}))) as T;
}

/** The answer to a call, once the session was renewed if need be; an error status throws. A
 * `Blob` body goes as it is (an upload), with its own type; anything else as JSON. */
async function request(method: Method, path: string, body?: unknown, auth = true): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const token = session?.token;
    const headers: Record<string, string> = {};
    const raw = body instanceof Blob;
    if (body !== undefined) headers['Content-Type'] = raw ? body.type || 'application/octet-stream' : 'application/json';
    if (auth && token) headers.Authorization = `Token ${token}`;
    let res: Response;
    try {
      res = await fetch(`/api${path}`, { method, headers, body: raw ? body : body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw new ApiError(0, { network: ['is unreachable'] });
    }
    if (res.status === 401 && auth && token && attempt === 0) {
      if (await refresh(token)) continue;
      save(null);
      onEnded('Your session has ended. Please log in again.');
      throw new ApiError(401, { session: ['has ended'] });
    }
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      throw new ApiError(res.status, (data as { errors?: Record<string, string[]> }).errors ?? {});
    }
    return res;
  }
}

const enc = encodeURIComponent;

export const Api = {
  register: (username: string, email: string, password: string) =>
    api<UserEnvelope>('POST', '/users', { user: { username, email, password } }, false),
  login: (email: string, password: string) => api<UserEnvelope>('POST', '/users/login', { user: { email, password } }, false),
  logout: () => api<void>('POST', '/users/logout'),
  me: () => api<UserEnvelope>('GET', '/user'),
  updateMe: (changes: Partial<Pick<User, 'bio' | 'image' | 'email' | 'username'>>) =>
    api<UserEnvelope>('PUT', '/user', { user: changes }),
  profile: (u: string) => api<ProfileEnvelope>('GET', `/profiles/${enc(u)}`),
  searchProfiles: (q: string) => api<Schemas['ProfileList']>('GET', `/profiles?q=${enc(q)}&limit=20`),
  follow: (u: string) => api<ProfileEnvelope>('POST', `/profiles/${enc(u)}/follow`),
  unfollow: (u: string) => api<ProfileEnvelope>('DELETE', `/profiles/${enc(u)}/follow`),
  block: (u: string) => api<ProfileEnvelope>('POST', `/profiles/${enc(u)}/block`),
  unblock: (u: string) => api<ProfileEnvelope>('DELETE', `/profiles/${enc(u)}/block`),
  blocks: () => api<Schemas['ProfileList']>('GET', '/user/blocks?limit=100'),
  conversations: (cursor?: string | null) =>
    api<Schemas['ConversationList']>(
      'GET',
      `/conversations?limit=100${cursor ? `&cursor=${enc(cursor)}` : ''}`,
    ),
  conversation: (id: string) => api<ConversationEnvelope>('GET', `/conversations/${enc(id)}`),
  direct: (username: string) => api<ConversationEnvelope>('POST', '/conversations/direct', { username }),
  createGroup: (name: string, members: string[], description = '') =>
    api<ConversationEnvelope>('POST', '/conversations', { name, description, members }),
  updateConversation: (id: string, changes: { name?: string; description?: string }) =>
    api<ConversationEnvelope>('PATCH', `/conversations/${enc(id)}`, changes),
  deleteConversation: (id: string) => api<void>('DELETE', `/conversations/${enc(id)}`),
  addMember: (id: string, username: string, role?: string) =>
    api<Schemas['MemberEnvelope']>('POST', `/conversations/${enc(id)}/members`, { username, role }),
  setRole: (id: string, username: string, role: string) =>
    api<Schemas['MemberEnvelope']>('PATCH', `/conversations/${enc(id)}/members/${enc(username)}`, { role }),
  removeMember: (id: string, username: string) => api<void>('DELETE', `/conversations/${enc(id)}/members/${enc(username)}`),
  history: (id: string, before?: number | null, limit = 50) =>
    api<Schemas['MessageList']>(
      'GET',
      `/conversations/${enc(id)}/messages?limit=${limit}${before != null ? `&before=${before}` : ''}`,
    ),
  send: (id: string, body: Schemas['SendBody']) =>
    api<MessageEnvelope>('POST', `/conversations/${enc(id)}/messages`, body),
  edit: (id: string, seq: number, content: string) =>
    api<MessageEnvelope>('PATCH', `/conversations/${enc(id)}/messages/${seq}`, { content }),
  deleteMessage: (id: string, seq: number) => api<void>('DELETE', `/conversations/${enc(id)}/messages/${seq}`),
  searchMessages: (q: string, cursor?: string | null) =>
    api<Schemas['SearchResults']>(
      'GET',
      `/search/messages?q=${enc(q)}&limit=20${cursor ? `&cursor=${enc(cursor)}` : ''}`,
    ),
  report: (id: string, seq: number, reason: string) =>
    api<Schemas['ReportEnvelope']>('POST', `/conversations/${enc(id)}/messages/${seq}/report`, { reason }),
  reports: () => api<Schemas['ReportList']>('GET', '/admin/reports?limit=100'),
  resolveReport: (id: string, body: Schemas['ResolveBody']) =>
    api<Schemas['ReportEnvelope']>('POST', `/admin/reports/${enc(id)}/resolve`, body),
  upload: (file: File) => api<Schemas['AttachmentEnvelope']>('POST', `/attachments?name=${enc(file.name)}`, file),
  /** An attachment's bytes: fetched with the token (an `<img src>` could not send it). */
  attachment: async (id: string) => (await request('GET', `/attachments/${enc(id)}`)).blob(),
  react: (id: string, seq: number, emoji: string) =>
    api<MessageEnvelope>('POST', `/conversations/${enc(id)}/messages/${seq}/reactions`, { emoji }),
  unreact: (id: string, seq: number, emoji: string) =>
    api<MessageEnvelope>('DELETE', `/conversations/${enc(id)}/messages/${seq}/reactions/${enc(emoji)}`),
  replies: (id: string, root: number) =>
    api<Schemas['MessageList']>('GET', `/conversations/${enc(id)}/messages/${root}/thread?limit=100`),
  pins: (id: string) => api<Schemas['PinList']>('GET', `/conversations/${enc(id)}/pins`),
  pin: (id: string, seq: number) => api<Schemas['PinEnvelope']>('POST', `/conversations/${enc(id)}/pins/${seq}`),
  unpin: (id: string, seq: number) => api<void>('DELETE', `/conversations/${enc(id)}/pins/${seq}`),
  markRead: (id: string, seq: number) => api<void>('POST', `/conversations/${enc(id)}/read`, { seq }),
  ticket: () => api<Schemas['TicketView']>('POST', '/ws/ticket'),
  notifications: () =>
    api<Schemas['NotificationList']>('GET', '/notifications?limit=50'),
  readNotifications: (ids: string[] | 'all') =>
    api<void>('POST', '/notifications/read', ids === 'all' ? { all: true } : { ids }),
  preferences: () => api<Schemas['PreferencesEnvelope']>('GET', '/notifications/preferences'),
  putPreferences: (p: Preferences) => api<Schemas['PreferencesEnvelope']>('PUT', '/notifications/preferences', { preferences: p }),
  pushKey: () => api<Schemas['PushKeyView']>('GET', '/push/public-key'),
  subscribePush: (sub: PushSubscriptionJSON) => api<void>('POST', '/push/subscriptions', sub),
  unsubscribePush: (endpoint: string) => api<void>('DELETE', '/push/subscriptions', { endpoint }),
};

/** A client id for an idempotent send: random, and works outside secure contexts too. */
export function newClientId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
