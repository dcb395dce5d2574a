import { defineImage, defineService, defineStack } from 'kiln';

/**
 * The quick start's stack: a small Node.js base image, an app baked on top of it as an npm
 * package, and a busybox image for shell-sized jobs. Packages come from the Debian archive named
 * by this machine's apt sources, at their newest (security-patched) versions, pinned in kiln.lock.
 */
const nodeBase = defineImage({
  name: 'node-base',
  from: 'debian:bookworm',
  packages: ['nodejs', 'ca-certificates'],
  users: [{ name: 'app', uid: 1000, home: '/home/app' }],
  env: { NODE_ENV: 'production', NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt' },
});

const hello = defineImage({
  name: 'hello',
  from: 'node-base',
  app: { src: './app', type: 'npm', dest: '/app' },
  user: 'app',
  workdir: '/app',
  env: { PORT: '8080' },
  ports: [8080],
  cmd: ['node', '/app/server.js'],
  labels: { 'org.opencontainers.image.source': 'examples/hello' },
});

const busybox = defineImage({
  name: 'busybox',
  from: 'debian:bookworm',
  packages: ['busybox-static'],
  entrypoint: ['/usr/bin/busybox'],
  cmd: ['echo', 'hello from a kiln image'],
});

/** Three instances of the app behind the router on 127.0.0.1:8080, replaced one by one on deploy. */
const web = defineService({
  name: 'hello',
  image: 'hello',
  replicas: 3,
  port: 8080,
  health: { http: '/healthz', interval: '1s', timeout: '500ms', threshold: 3 },
  resources: { memory: '128Mi', cpus: 0.5 },
  strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: 0 },
});

export default defineStack({ images: [nodeBase, hello, busybox], services: [web] });
