import { useEffect, useReducer, useState } from 'preact/hooks';
import { Auth } from './Auth';
import { Chat } from './Chat';
import { Sidebar } from './Sidebar';
import { NotificationsPanel, ProfileDialog, ReportsPanel, SettingsDialog } from './Panels';
import { state, subscribe } from './store';

export function App() {
  const [, rerender] = useReducer((x: number, _: number) => x + 1, 0);
  useEffect(() => {
    const off = subscribe(() => rerender(0));
    return () => void off();
  }, []);
  const [panel, setPanel] = useState<null | 'notifications' | 'profile' | 'settings' | 'reports'>(null);

  if (!state.user) return <Auth />;

  return (
    <div class="app">
      <ConnectionBanner />
      <Sidebar
        onNotifications={() => setPanel(panel === 'notifications' ? null : 'notifications')}
        notificationsOpen={panel === 'notifications'}
        onProfile={() => setPanel('profile')}
        onSettings={() => setPanel('settings')}
        onReports={() => setPanel(panel === 'reports' ? null : 'reports')}
      />
      <main class="main">
        <Chat />
      </main>
      {panel === 'notifications' && <NotificationsPanel onClose={() => setPanel(null)} />}
      {panel === 'reports' && <ReportsPanel onClose={() => setPanel(null)} />}
      {panel === 'profile' && <ProfileDialog onClose={() => setPanel(null)} />}
      {panel === 'settings' && <SettingsDialog onClose={() => setPanel(null)} />}
      {state.toast && (
        <div class="toast" role="alert">
          {state.toast}
        </div>
      )}
    </div>
  );
}

function ConnectionBanner() {
  const c = state.connection;
  const text =
    c === 'reconnecting' ? 'Reconnecting…' : c === 'connecting' ? 'Connecting…' : c === 'syncing' ? 'Catching up…' : null;
  return (
    <div class={`banner ${text ? 'show' : ''}`} role="status" aria-live="polite" data-connection={c}>
      {text}
    </div>
  );
}
