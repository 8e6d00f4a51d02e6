// Development and preview: `/api` and `/ws` go to the gateway (SOULCHAT_API_URL, default the
// `soulchat up` address). In production the gateway serves `dist/` itself, same origin.
import { defineConfig } from 'vite';

const target = process.env.SOULCHAT_API_URL ?? 'http://127.0.0.1:8080';
const proxy = {
  '/api': { target, changeOrigin: false },
  '/ws': { target: target.replace(/^http/, 'ws'), ws: true, changeOrigin: false },
};

// The policy the gateway should send with the page: `vite preview` sends it too, so the browser
// test runs under it.
export const CSP =
  "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' https: data:; style-src 'self'; " +
  "script-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'self'; " +
  "form-action 'self'; frame-ancestors 'none'";

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2022',
    // One small script and one stylesheet: no preload polyfill, no inline scripts (CSP 'self').
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  server: { host: '127.0.0.1', port: 5173, strictPort: true, proxy },
  preview: { host: '127.0.0.1', port: 4173, strictPort: true, proxy, headers: { 'Content-Security-Policy': CSP } },
});
