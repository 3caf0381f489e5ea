/**
 * The Cloud Storage emulator of firebase-tools, served on 127.0.0.1 without the firebase CLI.
 *
 * `firebase emulators:start --only storage` cannot run on Debian 12: the CLI insists on Java 21
 * (Debian 12 has 17) and downloads a rules-runtime jar from Google at start. The GCS JSON API
 * routes never consult rules (they use the emulator's admin storage layer), so this script builds
 * the emulator's own HTTP app and listens, which needs neither.
 *
 * One adaptation, and only one: the emulator serves some JSON API routes (PATCH, rewriteTo,
 * copyTo) only at its root, as `@google-cloud/storage` addresses it under STORAGE_EMULATOR_HOST;
 * objmount addresses any --endpoint as a real GCS endpoint (`/storage/v1/...`), so that prefix is
 * removed here. Everything else is the emulator's behaviour, gaps included (test/emulators/README.md).
 *
 * Usage: forked with an IPC channel, `server.cjs [port]`; sends {port: N} once listening, and
 * exits when its stdin closes (so a test runner that dies takes it along) or on SIGTERM.
 */
'use strict';

const http = require('node:http');

const { StorageEmulator } = require('firebase-tools/lib/emulator/storage/index.js');
const { createApp } = require('firebase-tools/lib/emulator/storage/server.js');
const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry.js');

async function main() {
  const port = Number(process.argv[2] ?? 0);
  const emulator = new StorageEmulator({ projectId: 'demo-objmount', host: '127.0.0.1', port, rules: [] });
  const app = await createApp('demo-objmount', emulator);
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/storage/v1/')) req.url = req.url.slice('/storage/v1'.length);
    app(req, res);
  });
  // Node closes an idle keep-alive connection after 5 s, and a client that sends its next request
  // on it at that moment gets "socket hang up": tests pause about that long between requests
  // (mounting, copying), so idle connections are kept far longer than any test.
  server.keepAliveTimeout = 10 * 60_000;
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  // The emulator builds some URLs (bucket self links) from its registry entry.
  emulator.args.port = server.address().port;
  EmulatorRegistry.set('storage', emulator);
  process.send({ port: server.address().port });

  const stop = () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}

main().catch((error) => {
  process.stderr.write(`gcs emulator: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
