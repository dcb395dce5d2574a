/** The audit log's and the image store's JSON shapes (docs/api.md); types.ts re-exports them. */

/** `GET /v1/audit`: one audited action, newest first. */
export interface AuditJson {
  readonly seq: number;
  readonly at: string;
  /** The token name (or local user) that acted. */
  readonly actor: string;
  /** Such as `deploy`, `rollback`, `rollout.promote`, `chaos.run`. */
  readonly action: string;
  /** Such as the service name. */
  readonly target: string;
  readonly result: 'ok' | 'denied' | 'failed';
  readonly detail: string;
}

/** One package of an image's CycloneDX SBOM. */
export interface ImagePackageJson {
  readonly name: string;
  readonly version: string;
}

/** `GET /v1/images`: one tagged image of the control plane's image store, sorted by name. */
export interface ImageJson {
  /** The tag, such as `web:latest`. */
  readonly name: string;
  /** The image manifest digest. */
  readonly digest: string;
  readonly created: string | null;
  /** The image it was baked `from` (the `org.opencontainers.image.base.name` annotation), if any. */
  readonly base: string | null;
  readonly baseDigest: string | null;
  /** Bytes of the (compressed) layers. */
  readonly size: number;
  readonly layers: number;
  /** The attached SBOM's packages; null when the image has no SBOM. */
  readonly sbom: { readonly digest: string; readonly packages: readonly ImagePackageJson[] } | null;
  /** The attached signature's key id, and whether it verifies against the project's signing key. */
  readonly signature: { readonly keyid: string; readonly verified: boolean } | null;
}
