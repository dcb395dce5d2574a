/**
 * Test support: a host on a network of the test's own, a network namespace joined to this one by a
 * veth pair, that serves HTTP and can then be lost as a machine is: a blackhole route in the
 * namespace swallows every packet it would send back, with no reset and no ICMP, so connections to
 * it hang instead of failing. Everything is removed by `close()`, by PID and by name. Traffic goes
 * only to the namespace made here (registered with {@link allowTestNetwork}).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { allowTestNetwork } from './loopback-only.js';

/** Why a namespace host cannot be made here, with the fix; undefined when it can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'making network namespaces needs root';
  if (!existsSync('/usr/sbin/ip') && !existsSync('/sbin/ip') && !existsSync('/usr/bin/ip'))
    return 'ip is not installed: apt-get install iproute2 (scripts/install-prereqs.sh --tests does)';
  return undefined;
}

/** A 10.213.X.0/24 that no interface of this host has. */
export async function freeSubnet(): Promise<string> {
  const used = (await execa('ip', ['-4', '-o', 'addr'])).stdout;
  for (let attempt = 0; attempt < 50; attempt++) {
    const subnet = `10.213.${1 + Math.floor(Math.random() * 254)}`;
    if (!used.includes(` ${subnet}.`)) return subnet;
  }
  throw new Error('no free 10.213.X.0/24 subnet for a test network');
}

/** One host in a namespace of its own. */
export interface NetnsHost {
  /** Its address, reachable from this host until {@link cutOff}. */
  readonly address: string;
  /** Starts an HTTP server there answering every request with `id` (and `x-backend: id`); resolves to its port. */
  serve(id: string): Promise<number>;
  /** Loses the host: from now on nothing it sends reaches this one. */
  cutOff(): Promise<void>;
  /** Ends its servers and removes the namespace and the veth. */
  close(): Promise<void>;
}

const SERVER = `
const http = require('node:http');
const id = process.argv[1];
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': id }).end(id));
});
server.listen(0, '0.0.0.0', () => process.stdout.write(server.address().port + '\\n'));
`;

/** Makes the namespace, its veth and its address. */
export async function startNetnsHost(): Promise<NetnsHost> {
  const id = randomBytes(3).toString('hex');
  const ns = `kn${id}`;
  const veth = `kn${id}h`;
  const children: ChildProcess[] = [];
  const undo: (() => Promise<unknown>)[] = [];
  const close = async (): Promise<void> => {
    for (const step of undo.splice(0).reverse()) await step().catch(() => undefined);
  };
  try {
    const subnet = await freeSubnet();
    const disallow = allowTestNetwork(`${subnet}.`);
    undo.push(async () => disallow());
    await execa('ip', ['netns', 'add', ns]);
    undo.push(() => execa('ip', ['netns', 'del', ns]));
    await execa('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    undo.push(() => execa('ip', ['link', 'del', veth])); // usually gone with the namespace already
    await execa('ip', ['addr', 'add', `${subnet}.1/24`, 'dev', veth]);
    await execa('ip', ['link', 'set', veth, 'up']);
    await execa('ip', ['-n', ns, 'addr', 'add', `${subnet}.2/24`, 'dev', 'eth0']);
    await execa('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return {
      address: `${subnet}.2`,
      async serve(name) {
        // `ip netns exec` enters the namespace and execs node: the child's PID is the server's.
        const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, name], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        children.push(child);
        undo.push(async () => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGKILL');
          await new Promise((resolve) => child.once('exit', resolve));
        });
        let stderr = '';
        child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
        return new Promise<number>((resolve, reject) => {
          child.stdout!.setEncoding('utf8').once('data', (s: string) => resolve(Number.parseInt(s, 10)));
          child.once('exit', (code) => reject(new Error(`the server in ${ns} exited (${code}):\n${stderr}`)));
        });
      },
      async cutOff() {
        await execa('ip', ['-n', ns, 'route', 'add', 'blackhole', `${subnet}.1/32`]);
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
