/**
 * Debian archive access for baking: apt sources, signed archive indexes, version comparison,
 * dependency resolution, and verified .deb files read into layer entries.
 */
export {
  canonicalFieldName,
  parseParagraphs,
  parseProvides,
  parseRelations,
  relationText,
  type Provided,
  type Relation,
  type RelationOp,
  type RelationOptions,
} from './control.js';
export { compareVersions, isValidVersion, parseVersion, satisfies, type DebianVersion } from './version.js';
export {
  DEFAULT_COMPONENTS,
  DEFAULT_KEYRING,
  archiveSpec,
  parseDeb822Sources,
  parseOneLineSources,
  readAptSources,
  type AptSource,
  type ArchiveSpec,
  type ArchiveSpecOptions,
  type ArchiveSuite,
  type MirrorOptions,
} from './sources.js';
export { openArchive, type OpenArchiveOptions } from './archive.js';
export {
  parseRelease,
  verifyInRelease,
  type Release,
  type ReleaseCheck,
  type ReleaseFile,
} from './release.js';
export { buildPackageIndex, type PackageIndex, type PackageRecord } from './package-index.js';
export {
  DEFAULT_MAX_RESOLVE_STEPS,
  lockedPackages,
  resolvePackages,
  type InstallProfile,
  type LockedPackage,
  type PackageRequest,
  type ResolveOptions,
} from './resolve.js';
export {
  debUrl,
  fetchDeb,
  normaliseDebPath,
  readDeb,
  type DebContents,
  type FetchDebOptions,
} from './deb.js';
export type { FetchLike } from './transport.js';
