import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { defineConfig, type Plugin } from "vite";

/**
 * Writes `.br` and `.gz` next to every text file of the bundle: the server sends them as
 * they are (tower-http's precompressed ServeDir) instead of compressing on each request.
 */
function precompress(): Plugin {
  return {
    name: "fedi-precompress",
    apply: "build",
    writeBundle(options, bundle) {
      const dir = options.dir ?? "dist";
      for (const name of [...Object.keys(bundle), "index.html"]) {
        if (!/\.(js|css|html|svg|json)$/.test(name)) continue;
        const path = join(dir, name);
        const data = readFileSync(path);
        writeFileSync(`${path}.gz`, gzipSync(data, { level: 9 }));
        writeFileSync(`${path}.br`, brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
      }
    },
  };
}

// No React plugin: esbuild compiles JSX on its own, and Fast Refresh is not worth a Babel
// toolchain in the dependency tree. `modulePreload.polyfill` off: the polyfill is an inline
// script, which the server's Content-Security-Policy forbids.
export default defineConfig({
  esbuild: { jsx: "automatic" },
  plugins: [precompress()],
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
