/**
 * OCI image-spec types (image-spec v1.1): descriptors, manifests, indexes, image configuration, and
 * the one entry type every layer is built from and read into.
 */

/** A content address: `sha256:` and 64 lowercase hex digits. */
export type Digest = `sha256:${string}`;

/** Media types kiln writes and reads. */
export const MediaType = {
  ImageManifest: 'application/vnd.oci.image.manifest.v1+json',
  ImageIndex: 'application/vnd.oci.image.index.v1+json',
  ImageConfig: 'application/vnd.oci.image.config.v1+json',
  LayerTar: 'application/vnd.oci.image.layer.v1.tar',
  LayerTarGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  EmptyJson: 'application/vnd.oci.empty.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerLayerTarGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/** Annotation keys from the image spec that kiln uses. */
export const Annotation = {
  RefName: 'org.opencontainers.image.ref.name',
  Created: 'org.opencontainers.image.created',
  Title: 'org.opencontainers.image.title',
  BaseDigest: 'org.opencontainers.image.base.digest',
  BaseName: 'org.opencontainers.image.base.name',
} as const;

/** The platform an image runs on (`linux`/`amd64`). */
export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
}

/** A reference to content: its media type, digest and size, with optional annotations. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly artifactType?: string;
  readonly platform?: Platform;
}

/** An image (or artifact) manifest: a config blob and layer blobs, optionally about a `subject`. */
export interface ImageManifest {
  readonly schemaVersion: 2;
  readonly mediaType: typeof MediaType.ImageManifest;
  readonly artifactType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** An image index: a list of manifests (the layout's index.json, or a multi-platform image). */
export interface ImageIndex {
  readonly schemaVersion: 2;
  readonly mediaType: typeof MediaType.ImageIndex;
  readonly manifests: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>>;
}

/** The image configuration blob: runtime defaults and the ordered `diff_ids` of the layers. */
export interface ImageConfig {
  readonly created?: string;
  readonly architecture: string;
  readonly os: string;
  readonly config: {
    readonly User?: string;
    readonly Env?: readonly string[];
    readonly Entrypoint?: readonly string[];
    readonly Cmd?: readonly string[];
    readonly WorkingDir?: string;
    readonly ExposedPorts?: Readonly<Record<string, Record<string, never>>>;
    readonly Volumes?: Readonly<Record<string, Record<string, never>>>;
    readonly Labels?: Readonly<Record<string, string>>;
    readonly StopSignal?: string;
  };
  readonly rootfs: { readonly type: 'layers'; readonly diff_ids: readonly Digest[] };
  readonly history?: readonly {
    readonly created?: string;
    readonly created_by?: string;
    readonly comment?: string;
    readonly empty_layer?: boolean;
  }[];
}

/** The kinds of filesystem entry a layer can hold. */
export type EntryType =
  'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';

/**
 * One filesystem entry, as built into a layer or read out of one. Paths are relative to the root,
 * with no leading `/` or `./` (`usr/bin/node`); a directory's path has no trailing slash.
 */
export interface LayerEntry {
  readonly path: string;
  readonly type: EntryType;
  /** Permission bits including setuid/setgid/sticky (`0o4755`), never the file-type bits. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Contents of a regular file. */
  readonly content?: Buffer;
  /** Target of a symlink (as written) or of a hard link (a root-relative path, no leading `/`). */
  readonly linkname?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
  /**
   * Modification time in seconds since the epoch, as read from a layer by `readLayer`. `buildLayer`
   * ignores it and writes its own fixed `mtime` into every header, so builds stay reproducible.
   */
  readonly mtime?: number;
}
