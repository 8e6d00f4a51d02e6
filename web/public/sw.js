// SoulChat service worker: Web Push only (no caching). Served at /sw.js, scope /.
// A push payload is expected as JSON {title, body, data?}; plain text is shown as the body.

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let msg = { title: 'SoulChat', body: '' };
  if (event.data) {
    try {
      msg = { ...msg, ...event.data.json() };
    } catch {
      msg.body = event.data.text();
    }
  }
  const tag = msg.data && msg.data.conversation_id ? `conversation-${msg.data.conversation_id}` : undefined;
  event.waitUntil(
    self.registration.showNotification(msg.title, { body: msg.body, data: msg.data || {}, tag, icon: '/favicon.svg' }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((windows) => {
      for (const w of windows) if ('focus' in w) return w.focus();
      return self.clients.openWindow('/');
    }),
  );
});
