import type { LayerEntry } from '../oci/index.js';
import type { GroupSpec, UserSpec } from '../spec/index.js';

/** A line of /etc/passwd. */
export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly gecos: string;
  readonly home: string;
  readonly shell: string;
}

/** A line of /etc/group. */
export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

/** The login shell given to accounts that must not log in. */
export const NOLOGIN_SHELL = '/usr/sbin/nologin';

/**
 * The accounts every Debian-based image has, as base-passwd's maintainer script would create them:
 * root and nobody. kiln writes them itself because it runs no maintainer scripts.
 */
export function baseAccounts(hasShell: boolean): { passwd: PasswdEntry[]; group: GroupEntry[] } {
  return {
    passwd: [
      {
        name: 'root',
        uid: 0,
        gid: 0,
        gecos: 'root',
        home: '/root',
        shell: hasShell ? '/bin/sh' : NOLOGIN_SHELL,
      },
      { name: 'nobody', uid: 65534, gid: 65534, gecos: 'nobody', home: '/nonexistent', shell: NOLOGIN_SHELL },
    ],
    group: [
      { name: 'root', gid: 0, members: [] },
      { name: 'nogroup', gid: 65534, members: [] },
    ],
  };
}

/** Parses /etc/passwd text; malformed lines are skipped (they cannot come from kiln). */
export function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 7 && f[0])
    .map(([name, , uid, gid, gecos, home, shell]) => ({
      name: name!,
      uid: Number(uid),
      gid: Number(gid),
      gecos: gecos ?? '',
      home: home ?? '/',
      shell: shell ?? NOLOGIN_SHELL,
    }));
}

/** Parses /etc/group text. */
export function parseGroup(text: string): GroupEntry[] {
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 4 && f[0])
    .map(([name, , gid, members]) => ({
      name: name!,
      gid: Number(gid),
      members: members ? members.split(',').filter(Boolean) : [],
    }));
}

/**
 * Merges declared users and groups into existing account databases. A declared account replaces an
 * existing one of the same name; a user whose primary gid has no group gets a group named after it.
 * Output is sorted by id so it is the same whatever the declaration order.
 */
export function mergeAccounts(
  existing: { passwd: readonly PasswdEntry[]; group: readonly GroupEntry[] },
  users: readonly UserSpec[],
  groups: readonly GroupSpec[],
): { passwd: PasswdEntry[]; group: GroupEntry[] } {
  const groupByName = new Map(existing.group.map((g) => [g.name, { ...g, members: [...g.members] }]));
  for (const g of groups) groupByName.set(g.name, { name: g.name, gid: g.gid, members: [] });
  const passwdByName = new Map(existing.passwd.map((p) => [p.name, p]));
  for (const u of users) {
    const gid = u.gid ?? u.uid;
    passwdByName.set(u.name, {
      name: u.name,
      uid: u.uid,
      gid,
      gecos: u.name,
      home: u.home ?? '/nonexistent',
      shell: u.shell ?? NOLOGIN_SHELL,
    });
    if (![...groupByName.values()].some((g) => g.gid === gid)) {
      groupByName.set(u.name, { name: u.name, gid, members: [] });
    }
    for (const extra of u.groups) {
      const g = groupByName.get(extra);
      if (g && !g.members.includes(u.name)) g.members.push(u.name);
    }
  }
  const byId =
    <T extends { name: string }>(id: (t: T) => number) =>
    (a: T, b: T) =>
      id(a) - id(b) || (a.name < b.name ? -1 : 1);
  return {
    passwd: [...passwdByName.values()].sort(byId((p) => p.uid)),
    group: [...groupByName.values()]
      .map((g) => ({ ...g, members: [...g.members].sort() }))
      .sort(byId((g) => g.gid)),
  };
}

/** The layer entries for /etc/passwd, /etc/group, and each declared user's home directory. */
export function accountEntries(
  accounts: { passwd: readonly PasswdEntry[]; group: readonly GroupEntry[] },
  users: readonly UserSpec[],
): LayerEntry[] {
  const passwd = accounts.passwd
    .map((p) => `${p.name}:x:${p.uid}:${p.gid}:${p.gecos}:${p.home}:${p.shell}\n`)
    .join('');
  const group = accounts.group.map((g) => `${g.name}:x:${g.gid}:${g.members.join(',')}\n`).join('');
  const entries: LayerEntry[] = [
    { path: 'etc/passwd', type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from(passwd) },
    { path: 'etc/group', type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from(group) },
  ];
  for (const u of users) {
    if (u.home && u.home !== '/nonexistent' && u.home !== '/') {
      entries.push({
        path: u.home.slice(1),
        type: 'directory',
        mode: 0o750,
        uid: u.uid,
        gid: u.gid ?? u.uid,
      });
    }
  }
  return entries;
}
