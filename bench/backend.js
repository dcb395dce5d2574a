#!/usr/bin/env node
// A small HTTP backend for the router benchmarks, run as its own process: answers every request
// with 200 "ok" on 127.0.0.1, and prints {"port":N} once it listens. Ends on SIGTERM.
import http from 'node:http';

const BODY = Buffer.from('ok');

const server = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length });
  res.end(BODY);
});
// Longer than any run, so a keep-alive connection is never closed under the load generator.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
