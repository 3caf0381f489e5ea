// A TLS front for a plain-HTTP server, as a self-signed gateway would be: it terminates TLS with
// the given key and certificate and passes the bytes on. Runs in a process of its own (forked by
// tls.test.ts), so the test may use synchronous file calls on a mount that goes through it.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createServer } from 'node:tls';

const [upstreamPort, keyFile, certFile] = process.argv.slice(2);
const server = createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (socket) => {
  const upstream = connect(Number(upstreamPort), '127.0.0.1');
  socket.pipe(upstream).pipe(socket);
  const close = () => {
    socket.destroy();
    upstream.destroy();
  };
  socket.on('error', close);
  upstream.on('error', close);
});
server.on('tlsClientError', () => undefined); // a client refusing our certificate is the point of some tests
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('disconnect', () => process.exit(0));
