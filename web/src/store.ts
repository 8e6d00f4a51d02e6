// Client state and the live connection. One mutable state object; every change calls `emit()`
// and the app re-renders (small enough that nothing finer is needed).
//
// Live updates (README "WebSocket"): a single-use ticket from `POST /api/ws/ticket`, then
// `/ws?ticket=…`; on open, `resume` with the per-conversation cursors (the highest event `seq`
// applied per conversation). Any drop (close 4000, network loss, a missed pong) shows
// "Reconnecting…" and reconnects with backoff; events at or below a cursor are skipped, and
// messages are kept by `seq`, so nothing is missed or shown twice.

import {
  Api,
  ApiError,
  type Conversation,
  type Member,
  type Message,
  type Pin,
  type Notification,
  type Preferences,
  type Profile,
  type User,
  currentSession,
  endSession,
  newClientId,
  onSessionEnded,
  setUser,
  startSession,
} from './api';

export interface Pending {
  client_id: string;
  content: string;
  kind: string;
  url?: string;
  attachment_id?: string;
  metadata?: Record<string, string>;
  reply_to: number | null;
  status: 'sending' | 'failed';
  error?: string;
  created_at: string;
}

export interface Thread {
  messages: Map<number, Message>;
  pending: Pending[];
  /** `before` cursor for older history; null once the beginning is reached. */
  older: number | null;
  loading: boolean;
  loaded: boolean;
}

export type Connection = 'offline' | 'connecting' | 'syncing' | 'live' | 'reconnecting';

export interface State {
  user: User | null;
  notice: string | null;
  conversations: Map<string, Conversation>;
  current: string | null;
  threads: Map<string, Thread>;
  cursors: Map<string, number>;
  connection: Connection;
  presence: Map<string, { status: string; last_seen: string | null }>;
  typing: Map<string, Map<string, number>>; // conversation → user → until (ms)
  reads: Map<string, Map<string, number>>; // conversation → user → seq
  pins: Map<string, Pin[]>; // conversation → its pinned messages, newest pin first
  /** The thread on screen beside the history, with its replies (loaded when opened). */
  openThread: { id: string; root: number; replies: Map<number, Message> } | null;
  notifications: Notification[];
  unreadNotifications: number;
  preferences: Preferences | null;
  search: Profile[];
  /** Whom the user blocks (the first 100), shown while no people search is typed. */
  blocked: Profile[];
  toast: string | null;
}

export const state: State = {
  user: currentSession()?.user ?? null,
  notice: null,
  conversations: new Map(),
  current: null,
  threads: new Map(),
  cursors: new Map(),
  connection: 'offline',
  presence: new Map(),
  typing: new Map(),
  reads: new Map(),
  pins: new Map(),
  openThread: null,
  notifications: [],
  unreadNotifications: 0,
  preferences: null,
  search: [],
  blocked: [],
  toast: null,
};

const listeners = new Set<() => void>();
export function subscribe(f: () => void) {
  listeners.add(f);
  return () => listeners.delete(f);
}
let scheduled = false;
export function emit() {
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    listeners.forEach((f) => f());
  });
}

export function toast(text: string) {
  state.toast = text;
  emit();
  setTimeout(() => {
    if (state.toast === text) {
      state.toast = null;
      emit();
    }
  }, 4000);
}

export function describe(e: unknown): string {
  return e instanceof ApiError ? e.message : String(e);
}

// ---- session ----

onSessionEnded((reason) => resetToLogin(reason));

function resetToLogin(notice: string | null) {
  live.stop();
  state.user = null;
  state.notice = notice;
  state.conversations.clear();
  state.threads.clear();
  state.cursors.clear();
  state.current = null;
  state.presence.clear();
  state.typing.clear();
  state.reads.clear();
  state.notifications = [];
  state.unreadNotifications = 0;
  state.preferences = null;
  state.search = [];
  emit();
}

export async function signUp(username: string, email: string, password: string) {
  const { user } = await Api.register(username, email, password);
  startSession(user);
  await enter(user);
}

export async function logIn(email: string, password: string) {
  const { user } = await Api.login(email, password);
  startSession(user);
  await enter(user);
}

export async function logOut() {
  try {
    await Api.logout();
  } catch {
    // Already ended or unreachable: the local session goes anyway.
  }
  endSession();
  resetToLogin(null);
}

/** Starts the signed-in app: conversations, notifications, preferences, then the socket. */
export async function enter(user: User) {
  state.user = user;
  state.notice = null;
  emit();
  await loadConversations();
  live.start();
  void loadNotifications();
  void loadPreferences();
}

export async function boot() {
  const s = currentSession();
  if (!s) return;
  try {
    const { user } = await Api.me();
    setUser({ ...user, token: currentSession()?.token ?? user.token });
    await enter(currentSession()!.user);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return; // the session ended: login screen
    // Unreachable server: keep the session and let the socket retry.
    state.user = s.user;
    emit();
    live.start();
  }
}

export async function saveProfile(bio: string, image: string) {
  const { user } = await Api.updateMe({ bio: bio || null, image: image || null });
  setUser(user);
  state.user = currentSession()!.user;
  emit();
}

// ---- conversations ----

async function loadConversations() {
  let cursor: string | null = null;
  const seen = new Set<string>();
  do {
    const page: { conversations: Conversation[]; next_cursor: string | null } = await Api.conversations(cursor);
    for (const c of page.conversations) {
      seen.add(c.id);
      putConversation(c);
    }
    cursor = page.next_cursor;
  } while (cursor);
  for (const id of [...state.conversations.keys()]) if (!seen.has(id)) forget(id);
  emit();
  // The list leaves members out: a direct conversation needs them for its title and presence.
  const directs = [...state.conversations.values()].filter((c) => c.kind === 'direct' && c.members.length === 0);
  await Promise.all(
    Array.from({ length: Math.min(6, directs.length) }, async () => {
      for (let c = directs.shift(); c; c = directs.shift()) await ensureMembers(c.id).catch(() => {});
    }),
  );
}

function putConversation(c: Conversation) {
  const old = state.conversations.get(c.id);
  if (old && old.last_seq > c.last_seq) return; // an older copy than what we already applied
  if (old && (!c.members || c.members.length === 0)) c.members = old.members;
  state.conversations.set(c.id, c);
  const cur = state.cursors.get(c.id) ?? 0;
  if (c.last_seq > cur) state.cursors.set(c.id, c.last_seq);
  // Members' read positions are not in the API; ours is.
  if (state.user) reads(c.id).set(state.user.username, c.read_seq);
}

function forget(id: string) {
  state.conversations.delete(id);
  state.threads.delete(id);
  state.cursors.delete(id);
  state.pins.delete(id);
  if (state.openThread?.id === id) state.openThread = null;
  if (state.current === id) state.current = null;
}

export function sortedConversations(): Conversation[] {
  return [...state.conversations.values()].sort((a, b) => b.last_activity_at.localeCompare(a.last_activity_at));
}

export function title(c: Conversation): string {
  if (c.kind === 'group') return c.name || 'Group';
  return peer(c) ?? 'Direct conversation';
}

export function peer(c: Conversation): string | null {
  if (c.kind !== 'direct') return null;
  return c.members.find((m) => m.username && m.username !== state.user?.username)?.username ?? null;
}

async function ensureMembers(id: string) {
  const c = state.conversations.get(id);
  if (c && c.members.length > 0) return;
  const { conversation } = await Api.conversation(id);
  putConversation(conversation);
  emit();
}

export async function openConversation(id: string) {
  state.current = id;
  emit();
  const t = thread(id);
  void ensureMembers(id).catch(() => {});
  void loadPins(id).catch(() => {});
  if (!t.loaded && !t.loading) await loadOlder(id, true);
  markSeen(id);
}

export async function startDirect(username: string) {
  const { conversation } = await Api.direct(username.trim());
  putConversation(conversation);
  void openConversation(conversation.id);
}

export async function createGroup(name: string, members: string[]) {
  const { conversation } = await Api.createGroup(name.trim(), members);
  putConversation(conversation);
  void openConversation(conversation.id);
}

export async function renameGroup(id: string, name: string) {
  const { conversation } = await Api.updateConversation(id, { name });
  putConversation(conversation);
  emit();
}

export async function addMember(id: string, username: string) {
  await Api.addMember(id, username.trim());
  await refreshConversation(id);
}

export async function setRole(id: string, username: string, role: string) {
  await Api.setRole(id, username, role);
  await refreshConversation(id);
}

export async function removeMember(id: string, username: string) {
  await Api.removeMember(id, username);
  if (username === state.user?.username) {
    forget(id);
    emit();
  } else await refreshConversation(id);
}

async function refreshConversation(id: string) {
  try {
    const { conversation } = await Api.conversation(id);
    const old = state.conversations.get(id);
    if (old && old.last_seq > conversation.last_seq) {
      // Live events got further than this answer: keep what they say.
      conversation.unread_count = old.unread_count;
      conversation.last_message = old.last_message;
      conversation.last_seq = old.last_seq;
      conversation.last_activity_at = old.last_activity_at;
      conversation.read_seq = Math.max(old.read_seq, conversation.read_seq);
    }
    state.conversations.set(id, conversation);
    const cur = state.cursors.get(id) ?? 0;
    if (!old && conversation.last_seq > cur) state.cursors.set(id, conversation.last_seq);
    emit();
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      forget(id);
      emit();
    }
  }
}

// ---- messages ----

export function thread(id: string): Thread {
  let t = state.threads.get(id);
  if (!t) {
    t = { messages: new Map(), pending: [], older: null, loading: false, loaded: false };
    state.threads.set(id, t);
  }
  return t;
}

export function sortedMessages(t: Thread): Message[] {
  return [...t.messages.values()].sort((a, b) => a.seq - b.seq);
}

/** Loads the newest page (first) or the page before the oldest shown. */
export async function loadOlder(id: string, first = false) {
  const t = thread(id);
  if (t.loading || (!first && (t.older === null || !t.loaded))) return;
  t.loading = true;
  emit();
  try {
    const page = await Api.history(id, first ? null : t.older);
    for (const m of page.messages) if (!t.messages.has(m.seq)) t.messages.set(m.seq, m);
    t.older = page.messages.length === 0 ? null : page.next_cursor;
    t.loaded = true;
  } catch (e) {
    toast(`Could not load messages: ${describe(e)}`);
  } finally {
    t.loading = false;
    emit();
  }
}

export function send(
  id: string,
  content: string,
  opts: { kind?: string; url?: string; attachment_id?: string; metadata?: Record<string, string>; reply_to?: number | null } = {},
) {
  const p: Pending = {
    client_id: newClientId(),
    content,
    kind: opts.kind ?? 'text',
    url: opts.url,
    attachment_id: opts.attachment_id,
    metadata: opts.metadata,
    reply_to: opts.reply_to ?? null,
    status: 'sending',
    created_at: new Date().toISOString(),
  };
  thread(id).pending.push(p);
  emit();
  void deliver(id, p);
}

/** Uploads a file, then sends it as an image (when the server found one) or a file message. */
export async function sendFile(id: string, file: File, content: string, reply_to: number | null) {
  try {
    const { attachment } = await Api.upload(file);
    const kind = attachment.content_type.startsWith('image/') ? 'image' : 'file';
    const metadata = { name: attachment.name, size: `${attachment.size} bytes`, type: attachment.content_type };
    send(id, content, { kind, attachment_id: attachment.id, metadata, reply_to });
  } catch (e) {
    toast(`Could not upload ${file.name}: ${describe(e)}`);
  }
}

/** Object URLs of the attachments fetched so far, by id: each is fetched once. */
const attachmentUrls = new Map<string, Promise<string>>();

export function attachmentUrl(attachmentId: string): Promise<string> {
  let url = attachmentUrls.get(attachmentId);
  if (!url) {
    url = Api.attachment(attachmentId).then((blob) => URL.createObjectURL(blob));
    url.catch(() => attachmentUrls.delete(attachmentId));
    attachmentUrls.set(attachmentId, url);
  }
  return url;
}

export function retry(id: string, clientId: string) {
  const p = thread(id).pending.find((x) => x.client_id === clientId);
  if (!p) return;
  p.status = 'sending';
  p.error = undefined;
  emit();
  void deliver(id, p);
}

export function discard(id: string, clientId: string) {
  const t = thread(id);
  t.pending = t.pending.filter((x) => x.client_id !== clientId);
  emit();
}

/** REST send with the same `client_id` on every attempt: a retry never duplicates. */
async function deliver(id: string, p: Pending) {
  try {
    const body: Parameters<typeof Api.send>[1] = { client_id: p.client_id, content: p.content, kind: p.kind };
    if (p.reply_to != null) body.reply_to = p.reply_to;
    if (p.url) body.url = p.url;
    if (p.attachment_id) body.attachment_id = p.attachment_id;
    if (p.metadata) body.metadata = p.metadata;
    const { message } = await Api.send(id, body);
    applyMessage(message);
    emit();
  } catch (e) {
    p.status = 'failed';
    p.error = describe(e);
    emit();
  }
}

function applyMessage(m: Message) {
  if (m.thread_root != null) return applyReply(m);
  const t = state.threads.get(m.conversation_id);
  if (t) {
    t.messages.set(m.seq, m);
    t.pending = t.pending.filter((p) => p.client_id !== m.client_id || m.sender !== state.user?.username);
  }
  const c = state.conversations.get(m.conversation_id);
  if (c && (!c.last_message || c.last_message.seq <= m.seq)) {
    c.last_message = m;
    if (m.created_at > c.last_activity_at) c.last_activity_at = m.created_at;
  }
}

/** A thread reply: into the open thread, and counted into its root once. */
function applyReply(m: Message) {
  const open = state.openThread;
  const shown = open?.id === m.conversation_id && open.root === m.thread_root ? open : null;
  const fresh = !shown?.replies.has(m.seq);
  shown?.replies.set(m.seq, m);
  const root = state.threads.get(m.conversation_id)?.messages.get(m.thread_root!);
  if (root && fresh && (!root.thread || root.thread.last_reply_at < m.created_at)) {
    root.thread = { reply_count: (root.thread?.reply_count ?? 0) + 1, last_reply_at: m.created_at };
  }
}

export async function openThread(id: string, root: number) {
  state.openThread = { id, root, replies: new Map() };
  emit();
  const { messages } = await Api.replies(id, root);
  if (state.openThread?.id !== id || state.openThread.root !== root) return;
  for (const m of messages) state.openThread.replies.set(m.seq, m);
  emit();
}

export function closeThread() {
  state.openThread = null;
  emit();
}

export async function sendReply(id: string, root: number, content: string) {
  const { message } = await Api.send(id, { client_id: newClientId(), content, kind: 'text', thread_root: root });
  applyMessage(message);
  emit();
}

export async function editMessage(id: string, seq: number, content: string) {
  const { message } = await Api.edit(id, seq, content);
  const t = state.threads.get(id);
  if (t) t.messages.set(message.seq, message);
  emit();
}

/** Adds the caller's `emoji` to a message, or takes it back when it is already theirs. */
export async function toggleReaction(id: string, seq: number, emoji: string) {
  const mine = state.threads.get(id)?.messages.get(seq)?.reactions.some((r) => r.emoji === emoji && r.me);
  const { message } = await (mine ? Api.unreact(id, seq, emoji) : Api.react(id, seq, emoji));
  state.threads.get(id)?.messages.set(message.seq, message);
  const c = state.conversations.get(id);
  if (c?.last_message?.seq === message.seq) c.last_message = message;
  emit();
}

/**
 * A `reaction` frame applied to a message. Our own changes may have arrived already as the
 * REST answer: those only set `me`, and count only when `me` changes.
 */
function withReaction(m: Message, emoji: string, added: boolean, byMe: boolean): Message {
  const reactions = m.reactions.map((r) => ({ ...r }));
  let r = reactions.find((x) => x.emoji === emoji);
  if (byMe && (r?.me ?? false) === added) return m;
  if (!r && added) reactions.push((r = { emoji, count: 0, me: false }));
  if (!r) return m;
  r.count += added ? 1 : -1;
  if (byMe) r.me = added;
  return { ...m, reactions: reactions.filter((x) => x.count > 0) };
}

export async function loadPins(id: string) {
  const { pins } = await Api.pins(id);
  state.pins.set(id, pins);
  emit();
}

/** Pins the message, or unpins it when it is pinned. */
export async function togglePin(id: string, seq: number) {
  if (state.pins.get(id)?.some((p) => p.message.seq === seq)) await Api.unpin(id, seq);
  else await Api.pin(id, seq);
  await loadPins(id);
}

/** In a group the admins and the owner pin; in a direct conversation both members. */
export function mayPin(c: Conversation): boolean {
  return c.kind === 'direct' || c.my_role === 'admin' || c.my_role === 'owner';
}

export async function deleteMessage(id: string, seq: number) {
  await Api.deleteMessage(id, seq);
  const m = state.threads.get(id)?.messages.get(seq);
  if (m) m.deleted = true;
  emit();
}

export async function reportMessage(id: string, seq: number, reason: string) {
  await Api.report(id, seq, reason.trim());
  toast('Reported to the administrators');
}

/** Read receipt for the newest message when the conversation is on screen. */
export function markSeen(id: string) {
  const c = state.conversations.get(id);
  if (!c || state.current !== id || document.visibilityState === 'hidden') return;
  const t = state.threads.get(id);
  const newest = t && t.messages.size ? Math.max(...t.messages.keys()) : (c.last_message?.seq ?? 0);
  const seq = Math.max(newest, c.last_message?.seq ?? 0);
  if (seq <= 0) return;
  c.unread_count = 0;
  emit();
  if (seq > c.read_seq) {
    c.read_seq = seq;
    Api.markRead(id, seq).catch(() => {
      c.read_seq = 0;
    });
  }
}

document.addEventListener('visibilitychange', () => state.current && markSeen(state.current));

export function reads(id: string): Map<string, number> {
  let r = state.reads.get(id);
  if (!r) state.reads.set(id, (r = new Map()));
  return r;
}

let lastTyping = 0;
export function typing(id: string) {
  const now = Date.now();
  if (now - lastTyping < 2000) return;
  lastTyping = now;
  live.frame({ type: 'typing', conversation_id: id });
}

export function typers(id: string): string[] {
  const m = state.typing.get(id);
  if (!m) return [];
  const now = Date.now();
  return [...m.entries()].filter(([, until]) => until > now).map(([u]) => u);
}

// ---- people ----

export async function searchPeople(q: string) {
  state.search = q.trim() ? (await Api.searchProfiles(q.trim())).profiles : [];
  emit();
}

export async function toggleFollow(p: Profile) {
  showProfile(p.following ? await Api.unfollow(p.username) : await Api.follow(p.username));
}

/** Someone blocked cannot message the user directly, nor see their presence or typing. */
export async function toggleBlock(p: Profile) {
  showProfile(p.blocked ? await Api.unblock(p.username) : await Api.block(p.username));
}

export async function loadBlocked() {
  state.blocked = (await Api.blocks()).profiles;
  emit();
}

function showProfile({ profile }: { profile: Profile }) {
  state.search = state.search.map((x) => (x.username === profile.username ? profile : x));
  const others = state.blocked.filter((x) => x.username !== profile.username);
  state.blocked = profile.blocked ? [...others, profile] : others;
  emit();
}

// ---- notifications and preferences ----

export async function loadNotifications() {
  try {
    const r = await Api.notifications();
    state.notifications = r.notifications;
    state.unreadNotifications = r.unread_count;
    emit();
  } catch {
    // shown as stale; the next live notification or reconnect retries
  }
}

export async function markNotificationsRead(ids: string[] | 'all') {
  await Api.readNotifications(ids);
  for (const n of state.notifications) if (ids === 'all' || ids.includes(n.id)) n.read = true;
  state.unreadNotifications = ids === 'all' ? 0 : Math.max(0, state.unreadNotifications - ids.length);
  emit();
}

async function loadPreferences() {
  try {
    state.preferences = (await Api.preferences()).preferences;
    emit();
  } catch {
    // optional
  }
}

export async function savePreferences(p: Preferences) {
  state.preferences = (await Api.putPreferences(p)).preferences;
  emit();
}

export async function toggleMute(id: string) {
  const p = state.preferences ?? (await Api.preferences()).preferences;
  const muted = p.muted_conversations.includes(id)
    ? p.muted_conversations.filter((x) => x !== id)
    : [...p.muted_conversations, id];
  await savePreferences({ ...p, muted_conversations: muted });
}

// ---- live connection ----

type Frame = { type: string; [k: string]: unknown };

class Live {
  private ws: WebSocket | null = null;
  private running = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private lastPong = 0;

  start() {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    window.addEventListener('online', this.online);
    window.addEventListener('offline', this.offline);
    void this.connect();
  }

  stop() {
    this.running = false;
    window.removeEventListener('online', this.online);
    window.removeEventListener('offline', this.offline);
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    state.connection = 'offline';
  }

  frame(f: Frame) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(f));
  }

  private online = () => {
    if (!this.running) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    if (!this.ws) void this.connect();
  };

  private offline = () => this.drop();

  /** Closes the current socket (if any) and schedules a reconnect. */
  private drop() {
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.heartbeat);
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = null;
      try {
        ws.close();
      } catch {
        // already closing
      }
    }
    if (!this.running) return;
    state.connection = 'reconnecting';
    emit();
    clearTimeout(this.timer);
    const delay = Math.min(10_000, 500 * 2 ** this.attempt++) * (0.75 + Math.random() / 2);
    this.timer = setTimeout(() => void this.connect(), delay);
  }

  private async connect() {
    if (!this.running || this.ws) return;
    state.connection = state.connection === 'offline' ? 'connecting' : 'reconnecting';
    emit();
    let ticket: string;
    try {
      ticket = (await Api.ticket()).ticket;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return; // session ended
      this.drop();
      return;
    }
    if (!this.running || this.ws) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}`);
    this.ws = ws;
    ws.onopen = () => {
      const conversations: Record<string, number> = {};
      for (const [id, seq] of state.cursors) conversations[id] = seq;
      ws.send(JSON.stringify({ type: 'resume', conversations }));
      state.connection = 'syncing';
      emit();
      this.lastPong = Date.now();
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => {
        if (Date.now() - this.lastPong > 25_000) return this.drop();
        this.frame({ type: 'ping' });
      }, 10_000);
    };
    ws.onmessage = (ev) => {
      this.lastPong = Date.now();
      try {
        handle(JSON.parse(String(ev.data)) as Frame);
      } catch (e) {
        console.error('bad frame', e);
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      if (ev.code === 4401) this.attempt = 0; // token expired or revoked: the ticket call refreshes or ends the session
      this.drop();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  resumed() {
    this.attempt = 0;
    state.connection = 'live';
    emit();
  }
}

export const live = new Live();

const CONVERSATION_EVENTS = new Set([
  'message',
  'message_updated',
  'message_deleted',
  'reaction',
  'pin',
  'member_added',
  'member_updated',
  'member_removed',
  'conversation_created',
  'conversation_updated',
  'conversation_deleted',
]);

function handle(f: Frame) {
  if (CONVERSATION_EVENTS.has(f.type)) return conversationEvent(f);
  switch (f.type) {
    case 'resumed':
      live.resumed();
      if (state.current) markSeen(state.current);
      return;
    case 'resume_truncated': {
      // Events before from_seq were skipped: reload that conversation from the API.
      const id = String(f.conversation_id);
      state.threads.delete(id);
      void refreshConversation(id).then(() => {
        if (state.current === id) void openConversation(id);
      });
      return;
    }
    case 'read': {
      const id = String(f.conversation_id);
      const user = f.user as string | null;
      if (!user) return;
      const r = reads(id);
      r.set(user, Math.max(r.get(user) ?? 0, Number(f.seq)));
      const c = state.conversations.get(id);
      if (c && user === state.user?.username && Number(f.seq) >= (c.last_message?.seq ?? 0)) c.unread_count = 0;
      emit();
      return;
    }
    case 'typing': {
      const id = String(f.conversation_id);
      const user = String(f.user);
      if (user === state.user?.username) return;
      let m = state.typing.get(id);
      if (!m) state.typing.set(id, (m = new Map()));
      m.set(user, Date.now() + 4000);
      // Typing means connected: the server announces presence only on changes and to sockets
      // opened after a conversation made two people contacts.
      state.presence.set(user, { status: 'online', last_seen: new Date().toISOString() });
      emit();
      setTimeout(emit, 4100);
      return;
    }
    case 'presence':
      state.presence.set(String(f.user), { status: String(f.status), last_seen: (f.last_seen as string) ?? null });
      emit();
      return;
    case 'notification': {
      const n = f.notification as Notification;
      if (!state.notifications.some((x) => x.id === n.id)) {
        state.notifications.unshift(n);
        if (!n.read) state.unreadNotifications++;
        emit();
      }
      return;
    }
    case 'error':
      if (f.code !== 429) toast(`Server: ${String(f.message ?? f.code)}`);
      return;
    case 'pong':
    case 'ack':
      return;
  }
}

function conversationEvent(f: Frame) {
  const id = String(f.conversation_id);
  const seq = Number(f.seq);
  const cursor = state.cursors.get(id) ?? 0;
  if (seq <= cursor) return; // already applied (before a drop, or through the list)
  state.cursors.set(id, seq);
  const c = state.conversations.get(id);
  const me = state.user?.username;
  if (c) {
    c.last_seq = Math.max(c.last_seq, seq);
    if (typeof f.at === 'string' && f.at > c.last_activity_at) c.last_activity_at = f.at;
  }
  const t = state.threads.get(id);
  switch (f.type) {
    case 'message': {
      const m = f.message as Message;
      const fresh = !t?.messages.has(m.seq);
      applyMessage(m);
      if (c && fresh && m.sender !== me) {
        if (state.current === id && document.visibilityState !== 'hidden') markSeen(id);
        else if (m.seq > c.read_seq) c.unread_count++;
      }
      // Whoever sends has read up to there.
      if (m.sender) {
        const r = reads(id);
        r.set(m.sender, Math.max(r.get(m.sender) ?? 0, m.seq));
      }
      if (m.sender) state.typing.get(id)?.delete(m.sender);
      break;
    }
    case 'message_updated': {
      // A frame's reactions cannot say which are ours (`me` is for one member): keep ours.
      const m = f.message as Message;
      const known = t?.messages.get(m.seq);
      t?.messages.set(m.seq, known ? { ...m, reactions: known.reactions } : m);
      if (c?.last_message?.seq === m.seq) c.last_message = { ...m, reactions: c.last_message.reactions };
      break;
    }
    case 'reaction': {
      const s = Number(f.message_seq);
      const [emoji, added, byMe] = [String(f.emoji), f.added === true, f.by === me];
      const m = t?.messages.get(s);
      if (m) t!.messages.set(s, withReaction(m, emoji, added, byMe));
      if (c?.last_message?.seq === s) c.last_message = withReaction(c.last_message, emoji, added, byMe);
      break;
    }
    case 'message_deleted': {
      const s = Number(f.message_seq);
      const m = t?.messages.get(s);
      if (m) t!.messages.set(s, { ...m, deleted: true, content: '' });
      if (c?.last_message?.seq === s) c.last_message = { ...c.last_message, deleted: true, content: '' };
      // A deleted message is unpinned with it.
      const pins = state.pins.get(id);
      if (pins) state.pins.set(id, pins.filter((p) => p.message.seq !== s));
      break;
    }
    case 'pin':
      // The frame names the message only: reload the list (when it was ever loaded).
      if (state.pins.has(id)) void loadPins(id).catch(() => {});
      break;
    case 'member_added':
    case 'member_updated': {
      const m = f.member as Member;
      if (!c) break;
      c.members = [...c.members.filter((x) => x.username !== m.username), m];
      if (m.username === me) c.my_role = m.role;
      if (f.type === 'member_added') c.member_count = c.members.length;
      break;
    }
    case 'member_removed': {
      const user = f.user as string | null;
      if (user === me) forget(id);
      else if (c) {
        c.members = c.members.filter((x) => x.username !== user);
        c.member_count = c.members.length;
      }
      break;
    }
    case 'conversation_created':
    case 'conversation_updated': {
      const conv = f.conversation as Conversation;
      const old = state.conversations.get(id);
      state.conversations.set(id, {
        ...conv,
        last_seq: Math.max(seq, conv.last_seq ?? 0),
        unread_count: old?.unread_count ?? conv.unread_count ?? 0,
        last_message: old?.last_message ?? conv.last_message,
        members: conv.members?.length ? conv.members : (old?.members ?? []),
        my_role: old?.my_role ?? conv.my_role,
        read_seq: old?.read_seq ?? conv.read_seq ?? 0,
      });
      // The event's view is the actor's: fetch ours (role, unread count) for a new one.
      if (!old) void refreshConversation(id);
      break;
    }
    case 'conversation_deleted':
      forget(id);
      break;
  }
  if (!c && f.type !== 'conversation_created' && f.type !== 'conversation_deleted' && !(f.type === 'member_removed')) {
    // A conversation we did not know yet (added while away): fetch it.
    void refreshConversation(id);
  }
  emit();
}

export { ApiError };
