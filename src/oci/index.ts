/**
 * The `oci` context: OCI image-spec types, digests, deterministic tar layers, the image layout
 * store, safe unpacking, and a distribution-API client. Other contexts import only this file.
 */
export * from './types.js';
export { canonicalJson, digestHex, isDigest, sha256Digest, verifyDigest } from './digest.js';
export {
  buildLayer,
  IMPLICIT_DIR_MODE,
  LAYER_GZIP_LEVEL,
  type BuildLayerOptions,
  type BuiltLayer,
} from './tar.js';
export {
  readLayer,
  DEFAULT_MAX_ENTRIES,
  DEFAULT_MAX_EXPANSION_RATIO,
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_TOTAL_BYTES,
  EXPANSION_FLOOR_BYTES,
  MAX_NAME_BYTES,
  MAX_PATH_BYTES,
  type ReadLayerLimits,
} from './tar-read.js';
export {
  OciStore,
  EMPTY_DESCRIPTOR,
  EMPTY_JSON_BLOB,
  OCI_LAYOUT_VERSION,
  type ArtifactInput,
  type OciStoreOptions,
  type PutManifestOptions,
  type TaggedImage,
} from './layout.js';
export { DEFAULT_GC_GRACE_MS, type GcOptions, type GcResult } from './layout-gc.js';
export { assertImageManifest, assertRefName, tagOf } from './refs.js';
export { unpackLayers, MAX_SYMLINK_HOPS, type UnpackOptions } from './unpack.js';
export {
  assertRepository,
  assertTag,
  parseReference,
  formatReference,
  isLoopbackHost,
  type ImageReference,
} from './reference.js';
export {
  BlobUploads,
  DEFAULT_MAX_BLOB_BYTES,
  DEFAULT_UPLOAD_TTL_MS,
  UPLOADS_DIR,
  type BlobUploadsOptions,
  type StoredBlob,
} from './blob-uploads.js';
export { RegistryClient } from './registry.js';
export {
  DEFAULT_CHUNK_SIZE,
  DEFAULT_MANIFEST_ACCEPT,
  fallbackTag,
  type FetchedManifest,
  type PushedBlob,
  type PushedManifest,
  type RegistryClientOptions,
} from './registry-api.js';
export {
  DEFAULT_HTTP_TIMEOUT_MS,
  errorCode,
  isCertificateError,
  nodeTransport,
  type HttpTransport,
} from './http.js';
export { DEFAULT_LOCK_TIMEOUT_MS, writeFileAtomic } from './fsutil.js';
export type { PulledImage, PullOptions, PushedImage, PushOptions, RemoteTarget } from './transfer.js';
export {
  registrySource,
  replicateImage,
  storeSource,
  type ReplicatedBlob,
  type ReplicateOptions,
  type Replication,
  type ReplicationSource,
  type ReplicationTarget,
} from './replicate.js';
export {
  DEFAULT_UPLOAD_CHUNK_SIZE,
  fileJournal,
  memoryJournal,
  uploadBlobResumable,
  type ResumableUploadOptions,
  type UploadJournal,
  type UploadRecord,
  type UploadResult,
} from './upload.js';
export {
  BlobChecker,
  DEFAULT_RACY_MARGIN_MS,
  hasIntactBlob,
  type BlobCheck,
  type BlobCheckerOptions,
} from './blob-check.js';
export {
  checkImageSignatures,
  keyId,
  pae,
  trustedKey,
  verifyEnvelope,
  SIGNATURE_ARTIFACT_TYPE,
  SIGNATURE_PAYLOAD_TYPE,
  type DsseEnvelope,
  type FoundSignature,
  type SignaturePayload,
  type TrustedKey,
} from './signature.js';
