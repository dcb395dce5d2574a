// The example service: answers every request with a greeting and the image it runs from,
// and /healthz for health checks.
import http from 'node:http';

const port = Number(process.env.PORT ?? 8080);
const version = process.env.KILN_RELEASE ?? 'dev';

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ hello: 'from kiln', release: version, pid: process.pid }) + '\n');
});

server.listen(port, () => console.log(`hello listening on :${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
