import { access, constants, readFile, stat } from 'node:fs/promises';
import { Command } from 'commander';
import { execa } from 'execa';
import { archiveSpec, DEFAULT_KEYRING, readAptSources, verifyInRelease } from '../bake/index.js';
import {
  detectRuntimes,
  findInit,
  inspectCgroups,
  probeSwarm,
  readEngineTls,
  TINI_STATIC,
} from '../runtime/index.js';
import { ValidationError } from '../errors/index.js';
import { resolveTargetPaths, type MirrorSpec, type TargetSpec } from '../spec/index.js';
import { aptRootFromEnv, loadFromOptions, printJson } from './common.js';

/** What `runDoctor` checks against. */
export interface DoctorOptions {
  /** Debian suite whose archive is checked. @default this machine's release */
  readonly suite?: string;
  /** The config's mirror, when there is a config; else the apt sources are checked. */
  readonly mirror?: MirrorSpec;
  readonly aptRoot?: string;
  readonly fetch?: typeof fetch;
  /** The config's targets: each swarm target's engine is asked whether kiln can run through it. */
  readonly targets?: Readonly<Record<string, TargetSpec>>;
}

/** One prerequisite and what to do when it is missing. */
export interface DoctorCheck {
  readonly name: string;
  readonly ok: boolean;
  /** `required` failures make doctor exit 1; `tests` ones are only needed by kiln's own test suite. */
  readonly level: 'required' | 'recommended' | 'tests';
  readonly detail: string;
  readonly fix?: string;
}

const APT = 'apt-get update && apt-get install -y';

async function hasCommand(cmd: string, args: string[] = ['--version']): Promise<string | undefined> {
  try {
    const r = await execa(cmd, args, { reject: false, timeout: 10_000 });
    if (r.exitCode !== 0 && !r.stdout && !r.stderr) return undefined;
    return (r.stdout || r.stderr).split('\n')[0]!.trim();
  } catch {
    return undefined;
  }
}

async function toolCheck(
  name: string,
  pkg: string,
  level: DoctorCheck['level'],
  args?: string[],
): Promise<DoctorCheck> {
  const version = await hasCommand(name, args);
  return version
    ? { name, ok: true, level, detail: version }
    : { name, ok: false, level, detail: 'not installed', fix: `${APT} ${pkg}` };
}

/**
 * Checks what kiln needs on this machine: Node.js, an OCI runtime, kernel features, gpgv and the
 * Debian keyring, and the configured Debian archive (its signed InRelease is fetched and verified).
 * Every failure carries the exact command that fixes it.
 */
export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  checks.push({
    name: 'node',
    ok: major > 20 || (major === 20 && minor >= 19),
    level: 'required',
    detail: `Node.js ${process.versions.node}`,
    fix: 'install Node.js 20.19 or newer',
  });
  const runtimes = await detectRuntimes().catch(() => []);
  checks.push(
    runtimes.length
      ? {
          name: 'oci-runtime',
          ok: true,
          level: 'required',
          detail: runtimes
            .map(
              (r) =>
                `${r.name} ${r.version}${r.unmountUnifiedCgroup ? ' (run under unshare -m, cgroup v1 unified unmounted)' : ''}`,
            )
            .join(', '),
        }
      : {
          name: 'oci-runtime',
          ok: false,
          level: 'required',
          detail: 'neither crun nor runc is installed',
          fix: `${APT} crun runc`,
        },
  );
  const init = findInit();
  checks.push({
    name: 'instance-init',
    ok: init !== undefined,
    level: 'recommended',
    detail: init
      ? `${init}: each instance's PID 1, passing SIGTERM on and reaping orphans`
      : `no ${TINI_STATIC}: instances run their process as PID 1, and one that ignores SIGTERM waits out the stop grace`,
    fix: `${APT} tini`,
  });
  const uid = process.getuid?.() ?? 0;
  checks.push({
    name: 'root',
    ok: uid === 0,
    level: 'required',
    detail: `running as uid ${uid}`,
    fix: 'run kiln as root (rootless containers are future work)',
  });
  const missingNs: string[] = [];
  for (const ns of ['pid', 'ipc', 'uts', 'mnt', 'net']) {
    if (!(await stat(`/proc/self/ns/${ns}`).catch(() => undefined))) missingNs.push(ns);
  }
  checks.push({
    name: 'namespaces',
    ok: missingNs.length === 0,
    level: 'required',
    detail: missingNs.length ? `missing: ${missingNs.join(', ')}` : 'pid, ipc, uts, mnt, net',
    fix: 'use a kernel built with CONFIG_PID_NS, CONFIG_IPC_NS, CONFIG_UTS_NS and CONFIG_NET_NS',
  });
  const cgroups = await inspectCgroups().catch(() => undefined);
  checks.push(
    cgroups
      ? { name: 'cgroups', ok: true, level: 'required', detail: `cgroup ${cgroups.mode}` }
      : {
          name: 'cgroups',
          ok: false,
          level: 'required',
          detail: '/sys/fs/cgroup is not mounted',
          fix: 'mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)',
        },
  );
  checks.push(await toolCheck('unshare', 'util-linux', 'required'));
  checks.push(await toolCheck('gpgv', 'gpgv', 'required'));
  const keyring = await access(DEFAULT_KEYRING, constants.R_OK).then(
    () => true,
    () => false,
  );
  checks.push(
    keyring
      ? { name: 'debian-keyring', ok: true, level: 'required', detail: DEFAULT_KEYRING }
      : {
          name: 'debian-keyring',
          ok: false,
          level: 'required',
          detail: `${DEFAULT_KEYRING} is missing`,
          fix: `${APT} debian-archive-keyring`,
        },
  );
  checks.push(await archiveCheck(options));
  for (const [tool, pkg, args] of [
    ['skopeo', 'skopeo', undefined],
    ['umoci', 'umoci', ['--version']],
    ['podman', 'podman', undefined],
    ['docker-registry', 'docker-registry', ['--version']],
    ['dpkg-deb', 'dpkg', undefined],
    ['gpg', 'gnupg', undefined],
    ['busybox', 'busybox-static', ['--help']],
    ['openssl', 'openssl', ['version']],
    ['mmdebstrap', 'mmdebstrap', undefined],
    ['dockerd', 'docker.io', ['--version']],
    ['ip', 'iproute2', ['-V']],
  ] as const) {
    checks.push(await toolCheck(tool, pkg, 'tests', args ? [...args] : undefined));
  }
  checks.push(...(await targetChecks(options.targets ?? {})));
  return checks;
}

/** One check per swarm target: its engine answers, and is a manager of an active swarm. */
async function targetChecks(targets: Readonly<Record<string, TargetSpec>>): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  for (const [name, target] of Object.entries(targets)) {
    if (target.driver !== 'swarm') continue;
    const tls = target.tls
      ? await readEngineTls(target.tls, `targets.${name}.tls`).catch((err: unknown) => err as Error)
      : undefined;
    if (tls instanceof Error) {
      checks.push({
        name: `target ${name}`,
        ok: false,
        level: 'recommended',
        detail: `${target.docker}: ${tls.message}`,
        fix: `correct targets.${name}.tls: PEM files of the engines' CA, kiln's client certificate and its key`,
      });
      continue;
    }
    const probe = await probeSwarm(target.docker, tls);
    checks.push({
      name: `target ${name}`,
      ok: probe.ok,
      level: 'recommended',
      detail: `${target.docker}: ${probe.detail}`,
      ...(probe.fix ? { fix: probe.fix } : {}),
    });
  }
  return checks;
}

async function archiveCheck(options: DoctorOptions): Promise<DoctorCheck> {
  const suite = options.suite ?? (await hostSuite()) ?? 'bookworm';
  try {
    const m = options.mirror;
    const mirror = typeof m === 'string' ? { url: m } : m;
    const spec = archiveSpec({
      suite,
      sources: await readAptSources(options.aptRoot ?? '/'),
      arch: 'amd64',
      ...(mirror ? { mirror } : {}),
    });
    const first = spec.suites[0]!;
    const url = `${first.uri.replace(/\/$/, '')}/dists/${first.name}/InRelease`;
    const res = await (options.fetch ?? fetch)(url, { signal: AbortSignal.timeout(15_000) });
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
    await verifyInRelease(Buffer.from(await res.arrayBuffer()), first.keyring, url);
    return {
      name: 'debian-archive',
      ok: true,
      level: 'required',
      detail: `${first.name}: signed InRelease verified (${spec.suites.map((s) => s.name).join(', ')})`,
    };
  } catch (err) {
    return {
      name: 'debian-archive',
      ok: false,
      level: 'required',
      detail: err instanceof Error ? err.message : String(err),
      fix: 'check the apt sources (/etc/apt/sources.list.d) reach the archive, or set mirror: in the config',
    };
  }
}

async function hostSuite(): Promise<string | undefined> {
  const text = await readFile('/etc/os-release', 'utf8').catch(() => '');
  return /^VERSION_CODENAME=(\w+)/m.exec(text)?.[1];
}

/** `kiln doctor`: check prerequisites and print the fix for each one missing. */
export function doctorCommand(): Command {
  return new Command('doctor')
    .description('check the prerequisites (OCI runtime, kernel features, Debian archive) and print fixes')
    .option('--json', 'print JSON')
    .option('--suite <name>', "Debian suite to check the archive for (default: this machine's)")
    .action(async (opts: { json?: boolean; suite?: string }, cmd: Command) => {
      // With a config at hand, check the archive it names; without one, the machine's apt sources.
      let configCheck: DoctorCheck | undefined;
      const config = await loadFromOptions(cmd).then(
        (c) => {
          configCheck = { name: 'config', ok: true, level: 'required', detail: c.file };
          return c;
        },
        (err: unknown) => {
          if (!(err instanceof ValidationError)) return undefined;
          configCheck = {
            name: 'config',
            ok: false,
            level: 'required',
            detail: err.message,
            fix: 'correct the config as the message says',
          };
          return undefined;
        },
      );
      const suite =
        opts.suite ?? config?.stack.images.find((i) => i.from.startsWith('debian:'))?.from.slice(7);
      const checks = await runDoctor({
        ...(suite ? { suite } : {}),
        ...(config?.stack.mirror ? { mirror: config.stack.mirror } : {}),
        ...(config
          ? {
              targets: Object.fromEntries(
                Object.entries(config.stack.targets).map(([n, t]) => [n, resolveTargetPaths(t, config.dir)]),
              ),
            }
          : {}),
        ...aptRootFromEnv(),
      });
      if (configCheck) checks.unshift(configCheck);
      const failedRequired = checks.some((c) => !c.ok && c.level === 'required');
      if (opts.json) printJson({ ok: !failedRequired, checks });
      else {
        for (const c of checks) {
          const mark = c.ok ? 'ok  ' : c.level === 'required' ? 'FAIL' : 'miss';
          process.stdout.write(
            `${mark}  ${c.name.padEnd(16)} ${c.detail}${c.level === 'tests' ? ' (for tests)' : ''}\n`,
          );
          if (!c.ok && c.fix) process.stdout.write(`      fix: ${c.fix}\n`);
        }
        process.stdout.write(
          failedRequired ? '\nkiln cannot run here until the FAIL lines are fixed.\n' : '\nkiln is ready.\n',
        );
      }
      if (failedRequired) process.exitCode = 1;
    });
}
