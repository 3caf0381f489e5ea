// An HTTP proxy between objmount and the local S3 server that injects faults on request.
//
// It runs in a process of its own (forked by fault-proxy.ts), so a test may block its own event
// loop in synchronous file calls on the mount without stalling the proxy that the mount needs.
// Rules arrive over IPC; the first rule that matches a request (method, and a regular expression
// over the path and query) and has uses left decides what happens to it:
//   delay       wait delayMs, then pass the request on
//   reset       destroy the connection before any response (after the first request-body chunk
//               when there is a body: a connection dropped mid-upload)
//   reset-body  pass the response's headers and half its body on, then destroy the connection
//   truncate    pass the headers (with the full Content-Length) and half the body, then end the
//               connection cleanly: a response cut short without a reset
//   status      answer with `status` and an S3 XML error `code` (500 InternalError, 503
//               SlowDown, 403 AccessDenied...) after reading the request body
//   hang        read the request and never answer (the connection stays open): a store that
//               stopped answering
//   stall       pass the response's headers and its first byte on, then nothing more, keeping
//               the connection open: a store that stopped passing bytes mid-body
// Every request is counted by rule, so tests can check that retries are bounded. Requests still
// open (neither answered in full nor closed by the client) are counted too, and `whenIdle`
// answers `idle` once none is: a test sees a hung request cancelled by the client.

import { request as httpRequest, createServer } from 'node:http';

const upstream = new URL(process.argv[2]);
let rules = [];
const counts = { requests: 0, matched: [], open: 0 };
let idleWanted = false;

function noteClosed() {
  counts.open -= 1;
  if (counts.open === 0 && idleWanted) {
    idleWanted = false;
    process.send({ type: 'idle' });
  }
}

function match(req) {
  const target = decodeURIComponent(req.url ?? '');
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i];
    if (rule.method && rule.method !== req.method) continue;
    if (rule.path && !new RegExp(rule.path).test(target)) continue;
    if (rule.times !== undefined && rule.used >= rule.times) continue;
    rule.used += 1;
    counts.matched[i] = (counts.matched[i] ?? 0) + 1;
    process.send({ type: 'matched', rule: i });
    return rule;
  }
  return undefined;
}

function errorBody(code) {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>injected by the fault proxy</Message><RequestId>fault</RequestId></Error>`;
}

function forward(req, res, rule) {
  const out = httpRequest(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
    (answer) => {
      const length = Number(answer.headers['content-length'] ?? 0);
      if (rule?.action === 'stall') {
        res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
        answer.once('data', (chunk) => {
          res.write(chunk.subarray(0, 1));
          answer.pause(); // and nothing more, until the client gives up
        });
        res.on('close', () => answer.destroy());
        return;
      }
      if (!rule || (rule.action !== 'reset-body' && rule.action !== 'truncate') || length < 2) {
        res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
        answer.pipe(res);
        return;
      }
      // Pass on the headers and the first half of the body, then cut the connection.
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      const half = Math.floor(length / 2);
      let sent = 0;
      answer.on('data', (chunk) => {
        if (sent >= half) return;
        const part = chunk.subarray(0, half - sent);
        sent += part.length;
        res.write(part);
        if (sent >= half) {
          answer.destroy();
          if (rule.action === 'reset-body') res.socket?.resetAndDestroy();
          else res.socket?.end();
        }
      });
    },
  );
  out.on('error', () => res.socket?.destroy());
  req.pipe(out);
}

const server = createServer((req, res) => {
  counts.requests += 1;
  counts.open += 1;
  res.once('close', noteClosed);
  const rule = match(req);
  switch (rule?.action) {
    case 'delay':
      setTimeout(() => forward(req, res, undefined), rule.delayMs ?? 100);
      return;
    case 'reset': {
      const hasBody = Number(req.headers['content-length'] ?? 0) > 0;
      if (hasBody) req.once('data', () => req.socket.resetAndDestroy());
      else req.socket.resetAndDestroy();
      return;
    }
    case 'hang':
      req.resume();
      return;
    case 'status': {
      req.resume();
      req.on('end', () => {
        const body = errorBody(rule.code ?? 'InternalError');
        res.writeHead(rule.status ?? 500, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    default:
      forward(req, res, rule);
  }
});
server.keepAliveTimeout = 5_000;

process.on('message', (message) => {
  if (message.type === 'set') {
    rules = message.rules.map((rule) => ({ ...rule, used: 0 }));
    counts.matched = [];
    process.send({ type: 'ok' });
  } else if (message.type === 'counts') {
    process.send({ type: 'counts', counts });
  } else if (message.type === 'whenIdle') {
    if (counts.open === 0) process.send({ type: 'idle' });
    else idleWanted = true;
  }
});
process.on('disconnect', () => process.exit(0));

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  process.send({ type: 'listening', port });
});
