import { defineConfig } from "vite";

// No React plugin: esbuild compiles JSX on its own, and Fast Refresh is not worth a Babel
// toolchain in the dependency tree. `modulePreload.polyfill` off: the polyfill is an inline
// script, which the server's Content-Security-Policy forbids.
export default defineConfig({
  esbuild: { jsx: "automatic" },
  build: {
    target: "es2022",
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` against a server on :3000 (make dev): the API is proxied, so the
    // client's same-origin assumption holds.
    proxy: {
      "/api": { target: "http://127.0.0.1:3000", ws: true },
      "/oauth": "http://127.0.0.1:3000",
    },
  },
});
