import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { wrap } from '../errors/index.js';
import {
  archiveSpec,
  fetchDeb,
  openArchive,
  readAptSources,
  readDeb,
  resolvePackages,
  type ArchiveSpec,
  type PackageIndex,
  type PackageRecord,
} from './debian/index.js';
import type { LockedPackage } from './lock.js';
import type { PackageContents } from './packages-layer.js';
import { licensesFromCopyright } from './sbom.js';
import type { MirrorSpec } from '../spec/index.js';

/** How many .debs are downloaded at once. */
export const DEFAULT_FETCH_CONCURRENCY = 6;

/** Where the Debian archive comes from and where its data is cached. */
export interface ArchiveOptions {
  readonly cacheDir: string;
  readonly mirror?: MirrorSpec;
  readonly arch: string;
  /** Root to read apt sources from. @default "/" */
  readonly aptRoot?: string;
  readonly offline?: boolean;
  readonly fetch?: typeof fetch;
}

/** What kiln remembers about a .deb it has read, by its SHA-256, so cached bakes need not reopen it. */
export interface DebMetadata {
  readonly control: Readonly<Record<string, string>>;
  readonly licenses: readonly string[];
}

/** Opens (and caches) the archive for each suite once per bake. */
export class Archives {
  private readonly specs = new Map<string, Promise<ArchiveSpec>>();
  private readonly indexes = new Map<string, Promise<PackageIndex>>();

  constructor(private readonly options: ArchiveOptions) {}

  /** The archive layout (URIs, keyrings) for a suite, from the config's mirror or the machine's apt sources. */
  spec(suite: string): Promise<ArchiveSpec> {
    let p = this.specs.get(suite);
    if (!p) {
      p = (async () => {
        const sources = await readAptSources(this.options.aptRoot ?? '/');
        const mirror = this.options.mirror;
        const m = typeof mirror === 'string' ? { url: mirror } : mirror;
        return archiveSpec({
          suite,
          sources,
          arch: this.options.arch,
          ...(m ? { mirror: m } : {}),
          ...(m && typeof m === 'object' && 'components' in m && m.components
            ? { components: m.components }
            : {}),
        });
      })();
      this.specs.set(suite, p);
    }
    return p;
  }

  /** The verified package index of a suite and its -updates and -security suites. */
  index(suite: string): Promise<PackageIndex> {
    let p = this.indexes.get(suite);
    if (!p) {
      p = this.spec(suite).then((spec) =>
        openArchive(spec, {
          cacheDir: this.options.cacheDir,
          ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
          ...(this.options.offline ? { offline: true } : {}),
        }),
      );
      this.indexes.set(suite, p);
    }
    return p;
  }

  /** Resolves requested packages (plus pinned base packages) to records, newest satisfying versions. */
  async resolve(
    suite: string,
    requests: readonly string[],
    profile: 'minimal' | 'minbase',
    pinned: readonly LockedPackage[],
  ): Promise<PackageRecord[]> {
    const index = await this.index(suite);
    const reqs = [
      ...pinned.map((p) => ({ name: p.name, version: p.version })),
      ...requests.map((r) => {
        const [name, version] = r.split('=', 2) as [string, string | undefined];
        return version ? { name, version } : { name };
      }),
    ];
    return resolvePackages(index, reqs, { profile });
  }

  /** Downloads (or takes from the cache) and reads locked packages, verifying each against its locked SHA-256. */
  async contents(suite: string, locked: readonly LockedPackage[]): Promise<PackageContents[]> {
    const spec = await this.spec(suite);
    const uriOf = (s: string) => spec.suites.find((x) => x.name === s)?.uri ?? spec.suites[0]!.uri;
    return mapLimit(locked, DEFAULT_FETCH_CONCURRENCY, async (p) => {
      const record = recordFromLock(p, uriOf(p.suite));
      const data = await fetchDeb(
        record,
        this.options.cacheDir,
        this.options.fetch ? { fetch: this.options.fetch } : {},
      );
      const deb = (() => {
        try {
          return readDeb(data, p.name);
        } catch (err) {
          throw wrap(`reading ${p.name} ${p.version}`, err);
        }
      })();
      const copyright = deb.entries.find(
        (e) => e.path === `usr/share/doc/${p.name}/copyright` && e.type === 'file',
      );
      await this.rememberMetadata(p.sha256, {
        control: deb.control,
        licenses: copyright?.content ? licensesFromCopyright(copyright.content.toString('utf8')) : [],
      });
      return { name: p.name, version: p.version, control: deb.control, entries: deb.entries };
    });
  }

  /** The control fields and licences of a .deb read before, or undefined. */
  async metadata(sha256: string): Promise<DebMetadata | undefined> {
    const text = await readFile(this.metadataFile(sha256), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as DebMetadata);
  }

  private async rememberMetadata(sha256: string, meta: DebMetadata): Promise<void> {
    const file = this.metadataFile(sha256);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(`${file}.tmp-${process.pid}`, JSON.stringify(meta));
    await rename(`${file}.tmp-${process.pid}`, file);
  }

  private metadataFile(sha256: string): string {
    return path.join(this.options.cacheDir, 'debmeta', `${sha256}.json`);
  }
}

/** A lock entry as the package record fetchDeb needs: the lock's hash is the one checked. */
function recordFromLock(p: LockedPackage, uri: string): PackageRecord {
  return {
    name: p.name,
    version: p.version,
    arch: p.arch,
    suite: p.suite,
    uri,
    filename: p.filename,
    size: p.size,
    sha256: p.sha256,
    essential: false,
    depends: [],
    provides: [],
    fields: {},
  };
}

/** A record as it is written into the lock. */
export function toLocked(r: PackageRecord): LockedPackage {
  return {
    name: r.name,
    version: r.version,
    arch: r.arch,
    suite: r.suite,
    filename: r.filename,
    size: r.size,
    sha256: r.sha256,
  };
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return results;
}
