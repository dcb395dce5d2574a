/**
 * Dependency resolution: the set of packages an image needs, chosen from a {@link PackageIndex} by
 * a small depth-first search that backtracks when a choice leads to an unsatisfiable constraint.
 */
import { ConflictError, IntegrityError, NotFoundError } from '../../errors/index.js';
import { parseRelations, relationText, type Relation } from './control.js';
import { compareNames, type PackageIndex, type PackageRecord } from './package-index.js';
import { describeMissing, suggestNames } from './resolve-report.js';
import { satisfies } from './version.js';

/** `minimal`: only what was asked for and its dependencies; `minbase`: plus every `Priority: required` package, as debootstrap's minbase variant. */
export type InstallProfile = 'minimal' | 'minbase';

/** A package asked for by name, optionally pinned to an exact version. */
export interface PackageRequest {
  readonly name: string;
  readonly version?: string;
}

/** Options of {@link resolvePackages}. */
export interface ResolveOptions {
  readonly profile: InstallProfile;
  /** How many search steps to try before giving up. @default DEFAULT_MAX_RESOLVE_STEPS */
  readonly maxSteps?: number;
}

/** A package pinned by a lockfile. */
export interface LockedPackage {
  readonly name: string;
  readonly version: string;
  readonly sha256: string;
}

/** The search's step bound; real Debian dependency sets resolve in a few thousand. */
export const DEFAULT_MAX_RESOLVE_STEPS = 100_000;

interface Item {
  readonly group: readonly Relation[];
  /** How this dependency was reached: the root package and version, then each relation followed. */
  readonly chain: readonly string[];
  readonly root: string;
  /** The search level whose choice put this item on the agenda; -1 for a request. */
  readonly owner: number;
}

interface Failure {
  readonly item: Item;
  readonly reason: string;
  readonly conflict: boolean;
  /** Chain extended by the candidate whose own dependency failed, when that is what failed. */
  readonly chain: readonly string[];
  /** True when the failure holds whatever else is chosen (no candidate exists at all). */
  readonly static: boolean;
}

const PRIORITY_RANK: Readonly<Record<string, number>> = {
  required: 0,
  important: 1,
  standard: 2,
  optional: 3,
  extra: 4,
};

/**
 * Chooses the packages to install for `requests`: for each, the newest version that satisfies
 * every constraint (or the pinned one), and, recursively, `Pre-Depends` and `Depends` (the first
 * alternative that can be satisfied, preferring one already chosen; virtual packages through
 * `Provides`, versioned provides included). `Recommends` and `Suggests` are ignored. Essential
 * packages are not added unless the profile is `minbase`, which adds every `Priority: required`
 * package. Returns the records sorted by name.
 *
 * @throws NotFoundError for an unknown request (suggesting close names) or an unmet dependency,
 *   naming the whole chain: `cannot install a: a 1.0 → b (>= 2): no candidate in …`.
 * @throws ConflictError when the only choices conflict (`Conflicts`/`Breaks`) or need two versions
 *   of one package.
 */
export function resolvePackages(
  index: PackageIndex,
  requests: readonly PackageRequest[],
  options: ResolveOptions,
): PackageRecord[] {
  checkRequests(index, requests);
  const roots: PackageRequest[] = [...requests];
  if (options.profile === 'minbase') {
    const required = new Set(
      index
        .all()
        .filter((r) => r.priority === 'required')
        .map((r) => r.name),
    );
    for (const name of [...required].sort(compareNames)) roots.push({ name });
  }
  const search = new Search(index, options.maxSteps ?? DEFAULT_MAX_RESOLVE_STEPS);
  return search.run(
    roots.map((r) => ({
      group: [r.version !== undefined ? { name: r.name, op: '=', version: r.version } : { name: r.name }],
      chain: [],
      root: r.name,
      owner: -1,
    })),
  );
}

function checkRequests(index: PackageIndex, requests: readonly PackageRequest[]): void {
  const problems: string[] = [];
  for (const r of requests) {
    if (!index.has(r.name) && index.providers(r.name).length === 0) {
      const close = suggestNames(index, r.name);
      problems.push(
        `cannot install ${r.name}: no package ${r.name} in ${index.suites.join(', ')}` +
          (close.length > 0 ? ` (did you mean ${close.join(', ')}?)` : ''),
      );
    } else if (
      r.version !== undefined &&
      !index.get(r.name).some((p) => satisfies(p.version, '=', r.version as string))
    ) {
      const have = index.get(r.name).map((p) => `${p.version} (${p.suite})`);
      problems.push(
        `cannot install ${r.name} ${r.version}: no such version in ${index.suites.join(', ')}` +
          (have.length > 0 ? `; available: ${have.join(', ')}` : ''),
      );
    }
  }
  if (problems.length > 0) throw new NotFoundError(problems.join('\n'));
}

class Search {
  private readonly chosen = new Map<string, PackageRecord>();
  private readonly chosenFor = new Map<string, string>();
  private readonly provided = new Map<string, PackageRecord[]>();
  private readonly agenda: Item[] = [];
  private readonly possible = new Map<string, boolean>();
  private best: Failure | undefined;
  private steps = 0;

  constructor(
    private readonly index: PackageIndex,
    private readonly maxSteps: number,
  ) {}

  run(roots: Item[]): PackageRecord[] {
    this.agenda.push(...roots);
    if (this.search(0, 0) !== true) throw this.error();
    return [...this.chosen.values()].sort((a, b) => compareNames(a.name, b.name));
  }

  /**
   * Satisfies the agenda from `start` on, choosing at search level `level`. Returns true, or the
   * level that should try its next candidate: normally the one below, but when an item can never
   * be satisfied whatever else is chosen, the level that put it on the agenda (backjumping over
   * the choices in between, which cannot help).
   */
  private search(start: number, level: number): true | number {
    let i = start;
    while (i < this.agenda.length && this.agenda[i]?.group.some((alt) => this.satisfiedByChosen(alt))) i++;
    const item = this.agenda[i];
    if (!item) return true;
    if (++this.steps > this.maxSteps) throw this.error(`gave up after ${this.maxSteps} search steps`);
    let reason: Failure | undefined;
    let hopeless = true;
    for (const alt of item.group) {
      for (const cand of this.candidates(alt)) {
        const blocked = this.blocker(cand, item, alt);
        if (blocked) {
          reason ??= blocked;
          hopeless &&= blocked.static;
          continue;
        }
        hopeless = false;
        const mark = this.agenda.length;
        this.choose(cand, item, alt, level);
        const result = this.search(i + 1, level + 1);
        if (result === true) return true;
        this.unchoose(cand, mark);
        if (result < level) return result;
      }
    }
    this.record(
      reason ?? {
        item,
        reason: this.missingReason(item.group),
        conflict: false,
        chain: item.chain,
        static: true,
      },
    );
    return hopeless ? item.owner : level - 1;
  }

  private archOk(alt: Relation): boolean {
    const q = alt.archQualifier;
    return q === undefined || q === 'any' || q === 'native' || q === this.index.arch;
  }

  private satisfiedByChosen(alt: Relation): boolean {
    if (!this.archOk(alt)) return false;
    const real = this.chosen.get(alt.name);
    if (real && (!alt.op || satisfies(real.version, alt.op, alt.version ?? ''))) return true;
    return (this.provided.get(alt.name) ?? []).some((p) => providesMatch(p, alt));
  }

  /** Real packages of that name (newest first), then providers, by priority and name. */
  private candidates(alt: Relation): PackageRecord[] {
    if (!this.archOk(alt)) return [];
    const real = this.index
      .get(alt.name)
      .filter((r) => !alt.op || satisfies(r.version, alt.op, alt.version ?? ''));
    const virtual = this.index
      .providers(alt.name)
      .filter((r) => r.name !== alt.name && providesMatch(r, alt))
      .sort((a, b) => rank(a) - rank(b));
    return [...real, ...virtual];
  }

  /** Why `cand` cannot be chosen now, if it cannot. */
  private blocker(cand: PackageRecord, item: Item, alt: Relation): Failure | undefined {
    const existing = this.chosen.get(cand.name);
    if (existing) {
      return {
        item,
        conflict: true,
        static: false,
        chain: item.chain,
        reason: `needs ${cand.name} ${cand.version} but ${existing.name} ${existing.version} is ${this.chosenFor.get(cand.name) ?? 'chosen'}`,
      };
    }
    for (const other of this.chosen.values()) {
      if (conflicts(cand, other) || conflicts(other, cand)) {
        return {
          item,
          conflict: true,
          static: false,
          chain: item.chain,
          reason: `${cand.name} ${cand.version} conflicts with ${other.name} ${other.version} (${this.chosenFor.get(other.name) ?? 'chosen'})`,
        };
      }
    }
    const chain = [...item.chain, this.label(cand, item, alt)];
    for (const group of cand.depends) {
      if (!this.isPossible(group)) {
        const failed: Item = { group, chain, root: item.root, owner: -1 };
        this.record({
          item: failed,
          reason: this.missingReason(group),
          conflict: false,
          chain,
          static: true,
        });
        return {
          item,
          reason: `${cand.name} ${cand.version} has an unmet dependency`,
          conflict: false,
          chain: item.chain,
          static: true,
        };
      }
    }
    return undefined;
  }

  /** Whether some alternative of the group has any candidate at all, whatever is chosen. */
  private isPossible(group: readonly Relation[]): boolean {
    const key = group.map(relationText).join(' | ');
    let ok = this.possible.get(key);
    if (ok === undefined) {
      ok = group.some((alt) => this.candidates(alt).length > 0);
      this.possible.set(key, ok);
    }
    return ok;
  }

  private label(cand: PackageRecord, item: Item, alt: Relation): string {
    if (item.chain.length === 0) return `${cand.name} ${cand.version}`;
    const rel = relationText(alt);
    return cand.name === alt.name ? rel : `${rel} (provided by ${cand.name})`;
  }

  private choose(cand: PackageRecord, item: Item, alt: Relation, level: number): void {
    const chain = [...item.chain, this.label(cand, item, alt)];
    this.chosen.set(cand.name, cand);
    this.chosenFor.set(cand.name, item.chain.length === 0 ? 'requested' : `chosen for ${chain.join(' → ')}`);
    for (const p of cand.provides) push(this.provided, p.name, cand);
    for (const group of cand.depends) this.agenda.push({ group, chain, root: item.root, owner: level });
  }

  private unchoose(cand: PackageRecord, mark: number): void {
    this.chosen.delete(cand.name);
    this.chosenFor.delete(cand.name);
    for (const p of cand.provides) {
      const list = this.provided.get(p.name) ?? [];
      list.splice(list.lastIndexOf(cand), 1);
      if (list.length === 0) this.provided.delete(p.name);
    }
    this.agenda.length = mark;
  }

  private missingReason(group: readonly Relation[]): string {
    return describeMissing(this.index, group);
  }

  // The deepest failure is the most specific one; on a tie the first found is kept.
  private record(f: Failure): void {
    if (!this.best || f.chain.length > this.best.chain.length) this.best = f;
  }

  private error(extra?: string): Error {
    const f = this.best;
    if (!f) return new ConflictError(`dependency resolution failed${extra ? `: ${extra}` : ''}`);
    // A request that fails by itself needs no path: the reason names it.
    const path =
      f.chain.length === 0 ? '' : `${[...f.chain, f.item.group.map(relationText).join(' | ')].join(' → ')}: `;
    const message = `cannot install ${f.item.root}: ${path}${f.reason}${extra ? ` (${extra})` : ''}`;
    return f.conflict ? new ConflictError(message) : new NotFoundError(message);
  }
}

function providesMatch(r: PackageRecord, alt: Relation): boolean {
  return r.provides.some(
    (p) =>
      p.name === alt.name &&
      (!alt.op || (p.version !== undefined && satisfies(p.version, alt.op, alt.version ?? ''))),
  );
}

function rank(r: PackageRecord): number {
  return PRIORITY_RANK[r.priority ?? 'optional'] ?? 5;
}

const conflictCache = new WeakMap<PackageRecord, Relation[]>();

/** True when `a` declares `Conflicts` or `Breaks` against `b` (by name or by what `b` provides). */
function conflicts(a: PackageRecord, b: PackageRecord): boolean {
  if (a.name === b.name) return false;
  let rels = conflictCache.get(a);
  if (!rels) {
    const field = [a.fields['Conflicts'], a.fields['Breaks']].filter(Boolean).join(', ');
    rels = parseRelations(field, { field: `${a.name}: Conflicts/Breaks` }).flat();
    conflictCache.set(a, rels);
  }
  return rels.some((rel) =>
    rel.name === b.name ? !rel.op || satisfies(b.version, rel.op, rel.version ?? '') : providesMatch(b, rel),
  );
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * Finds exactly the records a lockfile names, in name order.
 *
 * @throws NotFoundError listing every locked version the archive no longer serves, saying to run
 *   `kiln bake --update`.
 * @throws IntegrityError when the archive serves a locked version with a different SHA-256.
 */
export function lockedPackages(index: PackageIndex, locked: readonly LockedPackage[]): PackageRecord[] {
  const out: PackageRecord[] = [];
  const gone: string[] = [];
  for (const l of locked) {
    const rec = index.get(l.name).find((r) => r.version === l.version);
    if (!rec) {
      const now = index.newest(l.name);
      gone.push(
        `${l.name} ${l.version}${now ? ` (the archive now has ${now.version} in ${now.suite})` : ' (no longer in the archive)'}`,
      );
      continue;
    }
    if (rec.sha256 !== l.sha256) {
      throw new IntegrityError(
        `${l.name} ${l.version}: the lockfile has sha256 ${l.sha256} but ${rec.suite} serves sha256 ${rec.sha256}: ` +
          'the archive rebuilt a published version, or the lockfile was edited; check it, then run `kiln bake --update`',
      );
    }
    out.push(rec);
  }
  if (gone.length > 0) {
    throw new NotFoundError(
      `the lockfile pins packages ${index.suites.join(', ')} no longer serve: ${gone.join(', ')}: ` +
        'run `kiln bake --update` to resolve again',
    );
  }
  return out.sort((a, b) => compareNames(a.name, b.name));
}
