/**
 * Shared set-up for the fleet's end-to-end tests: a project whose image is busybox httpd from the
 * fixture archive, a `kiln server` (or `kiln up`) child process, the API and router clients, the
 * runtime's own view of the instances, and a clean-up that ends everything a test started, by PID
 * or instance id only, even when the test failed.
 *
 * Each instance writes its release into the page it serves (`r2 gen 2`), so a response says which
 * release answered it. `gen` is the service's `env.GEN`: changing it and deploying makes a release.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach } from 'vitest';
import { ApiClient, readConnection, readServerFile } from '../../src/api/index.js';
import {
  DEFAULT_INSTANCE_RUNTIME_ROOT,
  listContainers,
  LocalRuntimeDriver,
  RUNTIME_NAMES,
  type InstanceStatus,
} from '../../src/runtime/index.js';
import { connectRouter, type RouterClient } from '../../src/traffic/index.js';
import { cli, NO_APT_SOURCES, REPO, useBakery, type Project } from './bakery.js';
import { stopAllLoads } from './loadgen.js';

/** The service every fleet test deploys. */
export const SERVICE = 'web';

/** How the service is declared; each field goes to kiln.yaml. */
export interface WebService {
  readonly replicas: number;
  /** `env.GEN`, shown in every response: change it to make a new release. @default 1 */
  readonly gen?: number;
  /** @default '200ms' */
  readonly interval?: string;
  /** @default '1s' */
  readonly timeout?: string;
  /** @default 'rolling' */
  readonly strategy?: 'rolling' | 'bluegreen';
  /** @default '2m' */
  readonly progressDeadline?: string;
  /** Serve the page from a CGI script (see IMAGE), which can fail on purpose. @default false */
  readonly cgi?: boolean;
  /** With `cgi`: answer 500 to this many of every 1000 requests. @default 0 */
  readonly failPermille?: number;
  /** A canary strategy (steps and analysis), written as the spec takes it; overrides `strategy`. */
  readonly canary?: { readonly steps: readonly object[]; readonly analysis?: object };
  readonly tier?: number;
  /** The service's `drift` settings, as the spec takes them (`{ execGrace: '1s' }`). */
  readonly drift?: { readonly action?: 'replace' | 'alert'; readonly execGrace?: string };
}

/** A fleet project: its config, its files under `.kiln` (`KILN_HOME`), and clients for it. */
export interface FleetProject {
  readonly project: Project;
  /** The router's port for the service, and its URL. */
  readonly port: number;
  readonly url: string;
  /** Rewrites kiln.yaml with the service declared as given. */
  declare(service: WebService): Promise<void>;
  /** Rewrites kiln.yaml with `yaml` after the archive's settings (images and services of the test's own). */
  write(yaml: string): Promise<void>;
  /** Runs the built CLI in the project. */
  kiln(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Starts `kiln server` (with `args`, such as `--verify-interval 0`) and resolves once its API answers. */
  startServer(args?: readonly string[]): Promise<KilnProcess>;
  /** Spawns `node bin/kiln.js ARGS` in the project, tracked for clean-up. */
  spawnKiln(args: string[]): KilnProcess;
  /** A client of the running server's API (URL and admin token from the project's files). */
  api(): Promise<ApiClient>;
  /** The running router, adopted from `.kiln/router`. */
  router(): Promise<RouterClient>;
  /** The runtime's own view: the project's instances as crun/runc report them. */
  containers(): Promise<InstanceStatus[]>;
  /** The router's PID from `.kiln/router/router.pid`, if the file is there. */
  routerPid(): Promise<number | undefined>;
}

/** A kiln process a test started. */
export interface KilnProcess {
  readonly pid: number;
  readonly args: readonly string[];
  readonly child: ChildProcess;
  /** Everything it printed so far, stdout and stderr interleaved. */
  output(): string;
  /** Resolves with the exit code (or the signal's name) once it has exited. */
  readonly exited: Promise<number | string>;
}

/**
 * Registers the hooks of a fleet test file: the fixture archive, and after each test the clean-up
 * of every kiln process, load generator, instance and router it started. `fleet()` makes a project
 * with the service declared and (unless `bake: false`) its image baked.
 */
export function useFleet(): {
  fleet: (service: WebService, options?: { readonly bake?: boolean }) => Promise<FleetProject>;
} {
  const bakery = useBakery();
  const homes: string[] = [];
  const processes: KilnProcess[] = [];
  // Registered after useBakery's, so it runs first: processes end before their project is removed.
  afterEach(async (ctx) => {
    const errors: unknown[] = [];
    await stopAllLoads().catch((e: unknown) => errors.push(e));
    for (const p of processes.splice(0)) {
      await endProcess(p).catch((e: unknown) => errors.push(e));
      // What the control plane said is the first thing to read when a fleet test fails.
      if (ctx.task.result?.state === 'fail') {
        console.error(
          `--- kiln ${p.args.join(' ')} (pid ${p.pid}) said:\n${p.output().split('\n').slice(-80).join('\n')}`,
        );
      }
    }
    for (const home of homes.splice(0)) await stopFleet(home).catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw new AggregateError(errors, 'cleaning up after a fleet test');
  });
  return {
    fleet: async (service, options = {}) => {
      const project = await bakery.project();
      homes.push(project.home);
      const port = await freePort();
      const archive = bakery.archive();
      const fp: FleetProject = {
        project,
        port,
        url: `http://127.0.0.1:${port}/`,
        async declare(s) {
          await project.config(archive, `${WEB_IMAGE_YAML}services:\n${serviceYaml(s, port)}`);
        },
        async write(yaml) {
          await project.config(archive, yaml);
        },
        kiln: (args) => cli(project.dir, args, { KILN_HOME: project.home }),
        async startServer(args = []) {
          const server = fp.spawnKiln(['server', ...args]);
          const deadline = Date.now() + 30_000;
          for (;;) {
            const file = await readServerFile(project.home).catch(() => undefined);
            if (file?.pid === server.pid && (await answers(file.url))) return server;
            if (server.child.exitCode !== null || Date.now() > deadline) {
              throw new Error(`kiln server did not start:\n${server.output()}`);
            }
            await sleep(25);
          }
        },
        spawnKiln(args) {
          const p = spawnKiln(project, args);
          processes.push(p);
          return p;
        },
        api: async () => new ApiClient(await readConnection(project.home, {})),
        router: () => connectRouter({ dir: path.join(project.home, 'router') }),
        containers: () => instanceBundles(project.home),
        routerPid: () => routerPidOf(project.home),
      };
      await fp.declare(service);
      if (options.bake !== false) await project.bake();
      return fp;
    },
  };
}

/**
 * The image: busybox httpd serving a page that names the instance's release and `GEN`. With
 * `CGI=1` the page comes from a CGI script instead, which answers 500 to `FAIL_PERMILLE` of every
 * 1000 requests (its body then ends in " fail"); `/health.html` always answers. When `BASE_GEN`
 * (set by a base image) equals `FAIL_ON_BASE` (set by a service), it fails 50 of every 1000: a
 * base image that breaks one service.
 */
const CGI_SCRIPT = [
  '#!/bin/busybox sh',
  'if [ $((RANDOM % 1000)) -lt ${FAIL_PERMILLE:-0} ]; then',
  '  printf "Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\n%s fail\\n" "$KILN_RELEASE gen $GEN"',
  'else',
  '  printf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$KILN_RELEASE gen $GEN"',
  'fi',
];
export const WEB_IMAGE_YAML = `  - name: web
    from: debian:testing
    packages: [busybox-static]
    entrypoint:
      - /bin/busybox
      - sh
      - -c
      - |
        /bin/busybox mkdir -p /tmp/www/cgi-bin && echo ok > /tmp/www/health.html
        if [ -n "$FAIL_ON_BASE" ] && [ "$BASE_GEN" = "$FAIL_ON_BASE" ]; then export FAIL_PERMILLE=50; fi
        if [ "$CGI" = 1 ]; then
          printf '%s\\n' ${CGI_SCRIPT.map((l) => `'${l}'`).join(' ')} > /tmp/www/cgi-bin/index.cgi
          /bin/busybox chmod +x /tmp/www/cgi-bin/index.cgi
        else
          echo "$KILN_RELEASE gen $GEN" > /tmp/www/index.html
        fi
        exec /bin/busybox httpd -f -p 127.0.0.1:$PORT -h /tmp/www
`;

function serviceYaml(s: WebService, port: number): string {
  const env = {
    GEN: String(s.gen ?? 1),
    ...(s.cgi ? { CGI: '1', FAIL_PERMILLE: String(s.failPermille ?? 0) } : {}),
  };
  return [
    `  - name: ${SERVICE}`,
    `    image: web`,
    `    replicas: ${s.replicas}`,
    `    port: ${port}`,
    `    health: { http: ${s.cgi ? '/health.html' : '/index.html'}, interval: ${s.interval ?? '200ms'}, timeout: ${s.timeout ?? '1s'} }`,
    `    env: ${JSON.stringify(env)}`,
    `    strategy: ${s.canary ? JSON.stringify({ type: 'canary', ...s.canary }) : `{ type: ${s.strategy ?? 'rolling'} }`}`,
    `    progressDeadline: ${s.progressDeadline ?? '2m'}`,
    ...(s.tier !== undefined ? [`    tier: ${s.tier}`] : []),
    ...(s.drift !== undefined ? [`    drift: ${JSON.stringify(s.drift)}`] : []),
    '',
  ].join('\n');
}

/** What a page of release `release` made with `gen` says. */
export function pageOf(release: string, gen: number): string {
  return `${release} gen ${gen}\n`;
}

/** Starts the built CLI in `project` (with the fixture-only apt root unless `env` says otherwise). */
export function spawnKiln(project: Project, args: string[], env: NodeJS.ProcessEnv = {}): KilnProcess {
  const child = spawn(process.execPath, [path.join(REPO, 'bin', 'kiln.js'), ...args], {
    cwd: project.dir,
    env: {
      ...process.env,
      KILN_HOME: project.home,
      KILN_APT_ROOT: NO_APT_SOURCES,
      SOURCE_DATE_EPOCH: '',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  if (child.pid === undefined) throw new Error(`could not spawn kiln ${args.join(' ')}`);
  return { pid: child.pid, args, child, output: () => output, exited };
}

/** Ends a kiln process by its PID: SIGTERM, then SIGKILL after 10 s. */
export async function endProcess(p: KilnProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  process.kill(p.pid, 'SIGTERM');
  const done = await Promise.race([p.exited.then(() => true), sleep(10_000).then(() => false)]);
  if (!done) {
    process.kill(p.pid, 'SIGKILL');
    await p.exited;
  }
}

/**
 * Stops every instance under `<home>/instances` (by id, through the local runtime driver) and the
 * router recorded in `<home>/router/router.pid`. Run it once no control plane runs for `home`.
 * Every step runs even when one fails; the failures are thrown together at the end.
 */
export async function stopFleet(home: string): Promise<void> {
  const errors: unknown[] = [];
  await withDriver(home, async (driver) => {
    const ids = (await driver.list()).map((s) => s.id);
    for (let i = 0; i < ids.length; i += 10) {
      await Promise.all(
        ids
          .slice(i, i + 10)
          .map((id) => driver.stop(id, { graceMs: 0 }).catch((e: unknown) => errors.push(e))),
      );
    }
  }).catch((e: unknown) => errors.push(e));
  const pid = await routerPidOf(home);
  if (pid !== undefined && (await isRouter(pid))) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 250 && (await isRouter(pid)); i++) await sleep(20);
    if (await isRouter(pid)) process.kill(pid, 'SIGKILL');
  }
  if (errors.length > 0) throw new AggregateError(errors, `stopping the fleet of ${home}`);
}

/** The instances under `<home>/instances` as the runtime reports them. */
export function instanceBundles(home: string): Promise<InstanceStatus[]> {
  return withDriver(home, (driver) => driver.list());
}

/**
 * The ids of every container crun and runc hold in kiln's instance roots, of any project: what the
 * runtime itself runs, whatever kiln's records and bundles say.
 */
export async function runtimeContainerIds(): Promise<string[]> {
  const ids: string[] = [];
  for (const runtime of RUNTIME_NAMES) {
    if (!existsSync(path.join(DEFAULT_INSTANCE_RUNTIME_ROOT, runtime))) continue;
    ids.push(...(await retried(() => listContainers({ runtime, stateDir: DEFAULT_INSTANCE_RUNTIME_ROOT }))));
  }
  return ids.sort();
}

/**
 * Runs `use` with a local runtime driver over `<home>/instances`, closed afterwards. `crun list`
 * fails when another instance in the shared runtime root is removed while it reads it, and a
 * driver whose set-up failed stays failed, so each try gets a new driver.
 */
function withDriver<T>(home: string, use: (driver: LocalRuntimeDriver) => Promise<T>): Promise<T> {
  return retried(async () => {
    const driver = new LocalRuntimeDriver({
      stateDir: path.join(home, 'instances'),
      rootfs: () => Promise.reject(new Error('the tests only list and stop instances')),
    });
    try {
      return await use(driver);
    } finally {
      await driver.close();
    }
  });
}

/** `action`, tried up to five times. */
async function retried<T>(action: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await action();
    } catch (err) {
      if (attempt >= 5) throw err;
      await sleep(50 * attempt);
    }
  }
}

async function routerPidOf(home: string): Promise<number | undefined> {
  const text = await readFile(path.join(home, 'router', 'router.pid'), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** True while `pid` runs the router (its command line names router-main; a zombie has none). */
export async function isRouter(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.includes('router-main');
}

/** True while `pid` runs (and is not a zombie). */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat !== undefined && !/^\d+ \(.*\) [ZX]/s.test(stat);
}

async function answers(url: string): Promise<boolean> {
  try {
    // Health needs a `read` token: a 401 answered by the API is as good a sign of life as a 200.
    const res = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(2_000) });
    return res.ok || res.status === 401;
  } catch {
    return false;
  }
}

/** A port nothing listens on now, for the router to serve the service on. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One GET of `url`: its status and body, or the error's code. */
export async function get(url: string): Promise<{ status: number; body: string } | { error: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return { error: cause?.code ?? (err as Error).message };
  }
}

/** Waits until five GETs in a row of `url` are answered 200 with `page`. */
export async function waitServes(
  url: string,
  page: string,
  options: { timeoutMs: number; everyMs: number },
): Promise<void> {
  await waitFor(
    `${url} to serve ${JSON.stringify(page)}`,
    async () => {
      for (let i = 0; i < 5; i++) {
        const r = await get(url);
        if (!('body' in r) || r.status !== 200 || r.body !== page) return undefined;
      }
      return true;
    },
    options,
  );
}

/**
 * Polls `check` every `everyMs` until it returns something other than undefined, or throws at the
 * deadline. A check that throws is tried again, unless `fatal` says its error ends the wait at once.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  {
    timeoutMs = 30_000,
    everyMs = 50,
    fatal = () => false,
  }: { timeoutMs?: number; everyMs?: number; fatal?: (err: unknown) => boolean } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      if (fatal(err)) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    }
    await sleep(everyMs);
  }
}

/** The median and the 99th percentile (nearest rank) of `values`. */
export function medianAndP99(values: readonly number[]): { median: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
  return { median: rank(0.5), p99: rank(0.99) };
}
