/**
 * Test support: a Docker Swarm of N nodes on this machine. Each node is a network namespace
 * (`ip netns add`, a veth on a bridge of the test's own) running Debian's dockerd as PID 1 of its
 * own PID, mount and UTS namespaces, so SIGKILL to that one PID stops the whole node — dockerd,
 * containerd, shims and containers — as a lost machine would, and its mounts vanish with it.
 * The first node inits the swarm; the others join as workers. A Debian `docker-registry` on the
 * bridge's host address serves images to the nodes. `destroy()` removes everything, by PID and by
 * name, even after a failure. Traffic stays on the bridge and in the namespaces made here.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { waitFor } from './fleet.js';
import { allowTestNetwork } from './loopback-only.js';
import { freeSubnet } from './netns-host.js';
import { Cleanup, startRegistry } from './registry.js';

/** The Docker CLI of Debian's docker.io (the one that matches its dockerd). */
export const DOCKER_CLI = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
const DOCKERD = '/usr/sbin/dockerd';
const REGISTRY = '/usr/bin/docker-registry';

/** Why a swarm cannot be made here, with the fix; undefined when it can. */
export function swarmUnavailable(): string | undefined {
  if (process.getuid?.() !== 0)
    return 'the swarm tests make network namespaces and run dockerd: run them as root';
  const missing = [
    [DOCKERD, 'docker.io'],
    [REGISTRY, 'docker-registry'],
    ['/usr/bin/unshare', 'util-linux'],
    ['/usr/bin/nsenter', 'util-linux'],
  ].filter(([file]) => !existsSync(file!));
  if (missing.length === 0) return undefined;
  const pkgs = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
  return `${missing.map(([f]) => f).join(', ')} not installed: apt-get install ${pkgs} (scripts/install-prereqs.sh --tests does)`;
}

/** One node of the test swarm. */
export interface TestSwarmNode {
  readonly index: number;
  /** Its hostname, as `docker node ls` shows it. */
  readonly hostname: string;
  /** Its address on the bridge. */
  readonly address: string;
  /** Its engine: `unix:///…/docker.sock`. */
  readonly docker: string;
  /** With `tls`: its engine over TCP, `tcp://ADDRESS:2376`, which wants a client certificate. */
  readonly tcp?: string;
  /** The host PID of its dockerd (PID 1 of the node's namespaces); undefined once stopped. */
  pid: number | undefined;
}

/** A running test swarm. */
export interface TestSwarm {
  readonly nodes: readonly TestSwarmNode[];
  /** The first node: the swarm's manager. */
  readonly manager: TestSwarmNode;
  /** `ADDRESS:PORT` of the registry the nodes pull from. */
  readonly registry: string;
  /** Every node's engine, by hostname: the driver's `nodes` option. */
  readonly nodeEngines: Readonly<Record<string, string>>;
  /** With `tls`: the CA of the engines' certificates, and a client certificate and key it signed (PEM files). */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
  /** Runs the Docker CLI against a node (the manager by default). */
  docker(args: readonly string[], node?: TestSwarmNode): Promise<string>;
  /** Imports a root filesystem directory as `REGISTRY/REPO:latest`, pushes it and returns `REGISTRY/REPO@sha256:…`. */
  pushRootfs(dir: string, repo: string): Promise<string>;
  /** Stops a node as a crash would: SIGKILL to its dockerd, which ends every process of the node. */
  stopNode(node: TestSwarmNode): Promise<void>;
  /** Starts a stopped node's dockerd again, on its old state; resolves once the swarm has it Ready. */
  restartNode(node: TestSwarmNode): Promise<void>;
  destroy(): Promise<void>;
}

/** Options of {@link startSwarm}. */
export interface SwarmOptions {
  /** @default 1 */
  readonly nodes?: number;
  /** Names the namespaces, the bridge and the directories, so runs side by side never meet. */
  readonly tag: string;
  /**
   * Each engine also listens on `tcp://ADDRESS:2376` with TLS, as dockerd `--tlsverify` does: a
   * certificate for its address signed by a CA made here, and clients must show one it signed.
   * @default false
   */
  readonly tls?: boolean;
}

/** Makes the bridge, the namespaces, the dockerds, the registry and the swarm; undoes it all on failure. */
export async function startSwarm(options: SwarmOptions): Promise<TestSwarm> {
  const undo: (() => Promise<unknown>)[] = [];
  const count = options.nodes ?? 1;
  const id = `${options.tag.slice(0, 4)}${randomBytes(2).toString('hex')}`;
  const dir = await mkdtemp(path.join(tmpdir(), `kiln-swarm-${id}-`));
  undo.push(() => rm(dir, { recursive: true, force: true }));
  const nodes: TestSwarmNode[] = [];
  const destroy = async () => {
    const errors: unknown[] = [];
    for (const step of undo.splice(0).reverse()) await step().catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw new AggregateError(errors, 'tearing the test swarm down');
  };
  try {
    const subnet = await freeSubnet();
    const disallow = allowTestNetwork(`${subnet}.`);
    undo.push(async () => disallow());
    const bridge = `kb${id}`;
    await ip(['link', 'add', bridge, 'type', 'bridge']);
    undo.push(() => ip(['link', 'del', bridge]));
    await ip(['addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
    await ip(['link', 'set', bridge, 'up']);
    const registries = new Cleanup();
    undo.push(() => registries.run());
    const registry = (await startRegistry(registries, undefined, `${subnet}.1`)).host;
    const certs = options.tls ? await testCa(path.join(dir, 'tls')) : undefined;
    for (let i = 1; i <= count; i++) {
      const tls = certs && (await certs.server(`n${i}`, `${subnet}.${10 + i}`));
      const node = await startNode({ dir, id, i, subnet, bridge, registry, undo, tls });
      nodes.push(node);
    }
    const manager = nodes[0]!;
    const cli = (args: readonly string[], node: TestSwarmNode = manager) =>
      execa(DOCKER_CLI, ['-H', node.docker, ...args]).then((r) => r.stdout.trim());
    await cli(['swarm', 'init', '--advertise-addr', manager.address]);
    const token = await cli(['swarm', 'join-token', '-q', 'worker']);
    for (const node of nodes.slice(1)) {
      await cli(
        ['swarm', 'join', '--token', token, '--advertise-addr', node.address, `${manager.address}:2377`],
        node,
      );
    }
    await waitUntil(`${count} ready swarm nodes`, async () => {
      const ready = (await cli(['node', 'ls', '--format', '{{.Status}}'])).split('\n');
      return ready.filter((s) => s === 'Ready').length === count;
    });
    return {
      nodes,
      manager,
      registry,
      nodeEngines: Object.fromEntries(nodes.map((n) => [n.hostname, n.docker])),
      ...(certs ? { tls: certs.client } : {}),
      docker: cli,
      async pushRootfs(rootfs, repo) {
        const tar = path.join(dir, `${repo.replace(/\W/g, '_')}.tar`);
        await execa('tar', ['-C', rootfs, '-cf', tar, '.']);
        const tagged = `${registry}/${repo}:latest`;
        await cli(['import', tar, tagged]);
        const pushed = await cli(['push', tagged]);
        const digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed)?.[1];
        if (!digest) throw new Error(`docker push printed no digest:\n${pushed}`);
        return `${registry}/${repo}@${digest}`;
      },
      async stopNode(node) {
        if (node.pid === undefined) return;
        process.kill(node.pid, 'SIGKILL');
        await waitUntil(
          `node ${node.hostname} to stop`,
          async () => !existsSync(`/proc/${node.pid}/stat`) || isZombie(node.pid!),
        );
        node.pid = undefined;
      },
      async restartNode(node) {
        if (node.pid !== undefined) return;
        await launches.get(node)!();
        await waitUntil(`${node.hostname} to be Ready again`, async () => {
          const line = await cli([
            'node',
            'ls',
            '--filter',
            `name=${node.hostname}`,
            '--format',
            '{{.Status}}',
          ]);
          return line === 'Ready';
        });
      },
      destroy,
    };
  } catch (err) {
    await destroy().catch(() => undefined);
    throw err;
  }
}

async function startNode(o: {
  dir: string;
  id: string;
  i: number;
  subnet: string;
  bridge: string;
  registry: string;
  undo: (() => Promise<unknown>)[];
  /** The engine's own certificate and key, and the CA its clients' must chain to. */
  tls?: { ca: string; cert: string; key: string } | undefined;
}): Promise<TestSwarmNode> {
  const ns = `ks${o.id}-${o.i}`;
  const veth = `kv${o.id}${o.i}`;
  const address = `${o.subnet}.${10 + o.i}`;
  await ip(['netns', 'add', ns]);
  o.undo.push(() => ip(['netns', 'del', ns]));
  await ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  o.undo.push(() => ip(['link', 'del', veth]).catch(() => undefined)); // gone with the namespace
  await ip(['link', 'set', veth, 'master', o.bridge, 'up']);
  await ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
  await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  await ip(['-n', ns, 'route', 'add', 'default', 'via', `${o.subnet}.1`]);
  const home = path.join(o.dir, `n${o.i}`);
  await mkdir(path.join(home, 'data'), { recursive: true });
  const socket = path.join(home, 'docker.sock');
  const node: TestSwarmNode = {
    index: o.i,
    hostname: ns,
    address,
    docker: `unix://${socket}`,
    pid: undefined,
    ...(o.tls ? { tcp: `tcp://${address}:2376` } : {}),
  };
  const tcp = o.tls
    ? ` -H tcp://${address}:2376 --tlsverify --tlscacert ${o.tls.ca} --tlscert ${o.tls.cert} --tlskey ${o.tls.key}`
    : '';
  // A private /run, as a machine has: dockerd's exec root and containerd's state, shim sockets
  // and task bundles live there, so they go when the node goes and a restart begins clean, as
  // after a reboot. Only the data root (images, swarm state) outlives the node.
  const script = [
    'mount -t tmpfs -o mode=755 tmpfs /run',
    // Left by a dockerd that was killed; as PID 1 of a new namespace it would find itself in it.
    `rm -f ${home}/docker.pid`,
    `hostname ${ns}`,
    `exec ${DOCKERD} --data-root ${home}/data --exec-root /run/docker --pidfile ${home}/docker.pid ` +
      `-H unix://${socket}${tcp} --insecure-registry ${o.subnet}.0/24 --log-level warn`,
  ].join(' && ');
  /** Starts dockerd once; resolves when it answers, rejects (`exited`) if it dies first. */
  const launchOnce = async (): Promise<void> => {
    const child = spawn(
      'nsenter',
      [`--net=/var/run/netns/${ns}`, 'unshare', '--pid', '--fork', '--mount', '--mount-proc', '--uts',
        '--kill-child=SIGKILL', '/bin/sh', '-c', script], // prettier-ignore
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-20_000)));
    const running = () => child.exitCode === null && child.signalCode === null;
    o.undo.push(async () => {
      if (!running()) return; // stopped already: its PID may be another process's by now
      const pid = (await initOf(child.pid)) ?? child.pid;
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
      if (running()) await new Promise((resolve) => child.once('exit', resolve));
    });
    node.pid = undefined;
    await waitUntil(
      `dockerd of ${ns}`,
      async () => {
        if (!running()) {
          node.pid = undefined;
          throw new Error(`dockerd of ${ns} exited:\n${stderr}`);
        }
        node.pid ??= await initOf(child.pid);
        const version = await execa(DOCKER_CLI, ['-H', node.docker, 'version'], { reject: false });
        return existsSync(socket) && version.exitCode === 0;
      },
      60_000,
    );
  };
  /**
   * Starts dockerd as its service manager would: one that dies before it answers (dockerd gives
   * containerd 15 s to come up, which a loaded machine can miss) is started again, three tries in
   * all, like systemd's `Restart=always` within docker.service's start limit.
   */
  const launch = async (): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await launchOnce();
      } catch (err) {
        if (attempt >= 3 || !(err instanceof Error && /exited/.test(err.message))) throw err;
        console.warn(`${err.message.split('\n')[0]}; starting it again (try ${attempt + 1} of 3)`);
      }
    }
  };
  launches.set(node, launch);
  await launch();
  return node;
}

/** How each node's dockerd is started, again after a stop. */
const launches = new WeakMap<TestSwarmNode, () => Promise<void>>();

/** The PID namespace's init (dockerd) that `unshare --fork` started: its only child. */
async function initOf(unsharePid: number | undefined): Promise<number | undefined> {
  if (unsharePid === undefined) return undefined;
  const text = await readFile(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim().split(/\s+/)[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * A CA made with openssl in `dir`, a client certificate it signed, and `server(name, address)`
 * for an engine's certificate (an IP subject alternative name) it signs.
 */
async function testCa(dir: string) {
  await mkdir(dir, { recursive: true });
  const file = (name: string) => path.join(dir, name);
  const key = (name: string) =>
    execa('openssl', [
      'genpkey',
      '-algorithm',
      'EC',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-out',
      file(name),
    ]);
  await key('ca-key.pem');
  await execa('openssl', [
    'req', '-x509', '-new', '-key', file('ca-key.pem'), '-days', '2', '-subj', '/CN=kiln test engines CA',
    '-out', file('ca.pem'),
  ]); // prettier-ignore
  const sign = async (name: string, subject: string, extensions: string) => {
    await key(`${name}-key.pem`);
    await execa('openssl', [
      'req',
      '-new',
      '-key',
      file(`${name}-key.pem`),
      '-subj',
      subject,
      '-out',
      file(`${name}.csr`),
    ]);
    await writeFile(file(`${name}.ext`), `${extensions}\n`);
    await execa('openssl', [
      'x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca-key.pem'),
      '-CAcreateserial', '-days', '2', '-extfile', file(`${name}.ext`), '-out', file(`${name}.pem`),
    ]); // prettier-ignore
    return { ca: file('ca.pem'), cert: file(`${name}.pem`), key: file(`${name}-key.pem`) };
  };
  return {
    client: await sign('client', '/CN=kiln', 'extendedKeyUsage=clientAuth'),
    server: (name: string, address: string) =>
      sign(name, `/CN=${name}`, `subjectAltName=IP:${address}\nextendedKeyUsage=serverAuth`),
  };
}

async function ip(args: readonly string[]): Promise<void> {
  await execa('ip', args);
}

async function isZombie(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat === '' || /^\d+ \(.*\) [ZX]/s.test(stat);
}

/**
 * fleet's waitFor for checks that answer true or false; a check that says a process `exited`
 * ends the wait at once.
 */
function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  return waitFor(what, async () => (await check()) || undefined, {
    timeoutMs,
    everyMs: 100,
    fatal: (err) => err instanceof Error && /exited/.test(err.message),
  });
}
