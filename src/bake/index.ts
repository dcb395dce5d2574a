/** The `bake` context: from a validated image spec to a signed image with an SBOM in the store. */
export { bake, kilnHome, homePaths, kilnVersion, type BakeOptions } from './bake.js';
export type { BakedImage } from './image.js';
export {
  baseSuite,
  listImages,
  newerVersions,
  outdatedPackages,
  type ImageSummary,
  type OutdatedPackage,
} from './inventory.js';
export { readLock, LOCK_FILE_NAME, type Lock, type LockedPackage } from './lock.js';
export { Archives } from './packages.js';
export {
  loadOrCreateSigningKey,
  signManifest,
  verifyEnvelope,
  SIGNATURE_ARTIFACT_TYPE,
  type DsseEnvelope,
} from './sign.js';
export { SBOM_MEDIA_TYPE } from './sbom.js';
export { hostDebianArch } from './image-config.js';
export {
  appImageConfig,
  bakeDevBase,
  devIssues,
  devOmissions,
  type DevBase,
  type DevBaseOptions,
} from './dev-base.js';
export { archiveSpec, DEFAULT_KEYRING, readAptSources, verifyInRelease } from './debian/index.js';
