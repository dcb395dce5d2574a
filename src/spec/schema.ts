import { z } from 'zod';
import { serviceSchema } from './service.js';
import { regionsSchema, targetsSchema } from './targets.js';

/**
 * The paths an image leaves out unless its `exclude` says otherwise: documentation, man and info
 * pages, and lintian overrides. Copyright files stay, because licences travel with the software.
 * Spread it to add your own: `exclude: [...DEFAULT_EXCLUDES, '/usr/share/locale/**']`.
 */
export const DEFAULT_EXCLUDES: readonly string[] = Object.freeze([
  '/usr/share/doc/**',
  '!/usr/share/doc/*/copyright',
  '/usr/share/man/**',
  '/usr/share/info/**',
  '/usr/share/lintian/**',
  '/usr/share/linda/**',
]);

/** Where an app lands in the image unless `app.dest` says otherwise. */
export const DEFAULT_APP_DEST = '/app';

const NAME_RE = /^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$/;
const PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$/;
const ACCOUNT_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

const absolutePath = z.string().refine((p) => p.startsWith('/') && !p.split('/').includes('..'), {
  message: 'must be an absolute path inside the image, without ".." (for example "/etc/app.conf")',
});

/** A file mode as a number (`0o644`) or an octal string (`"0644"`, `"755"`). */
const fileMode = z.union([
  z.number().int().min(0).max(0o7777),
  z
    .string()
    .regex(/^0?[0-7]{3,4}$/, 'must be an octal mode such as "0644"')
    .transform((s) => parseInt(s, 8)),
]);

const uidOrGid = z.number().int().min(0).max(4_294_967_294);

export const fileSchema = z
  .object({
    /** Path on the build host, relative to the config file. */
    src: z.string().min(1),
    /** Absolute path in the image. */
    dest: absolutePath,
    mode: fileMode.optional(),
    uid: uidOrGid.default(0),
    gid: uidOrGid.default(0),
  })
  .strict();

export const userSchema = z
  .object({
    name: z.string().regex(ACCOUNT_RE, 'must be a lowercase account name such as "app"'),
    uid: uidOrGid,
    /** Primary group id; a group named after the user is created when no declared group has it. @default uid */
    gid: uidOrGid.optional(),
    home: absolutePath.optional(),
    shell: absolutePath.optional(),
    /** Supplementary groups, by name. */
    groups: z.array(z.string()).default([]),
  })
  .strict();

export const groupSchema = z
  .object({
    name: z.string().regex(ACCOUNT_RE, 'must be a lowercase group name such as "app"'),
    gid: uidOrGid,
  })
  .strict();

export const appSchema = z
  .object({
    /** A directory, a tarball (.tar, .tgz, .tar.gz), or an npm project (a directory with package.json), relative to the config file. */
    src: z.string().min(1),
    /** How to read `src`. @default inferred: a .tar/.tgz file is `tar`; a directory is `dir` */
    type: z.enum(['dir', 'tar', 'npm']).optional(),
    dest: absolutePath.default(DEFAULT_APP_DEST),
    /** Owner of the app's files, as `uid:gid` numbers. @default "0:0" */
    owner: z
      .string()
      .regex(/^\d+:\d+$/, 'must be "uid:gid", for example "1000:1000"')
      .default('0:0'),
    /** Globs (relative to `src`) left out of a `dir` app. @default [".git/**", ".kiln/**"] */
    ignore: z.array(z.string()).default(['.git/**', '.kiln/**']),
  })
  .strict();

export const runStepSchema = z.union([
  z.string().min(1),
  z
    .object({
      /** A shell command (run with /bin/sh -c) or an argv array. */
      command: z.union([z.string().min(1), z.array(z.string()).min(1)]),
      /** Give the step the host's network (for example for `npm ci`). @default false */
      network: z.boolean().default(false),
      /** Extra environment for this step only. */
      env: z.record(z.string(), z.string()).default({}),
    })
    .strict(),
]);

const portSchema = z.union([
  z.number().int().min(1).max(65535),
  z.string().regex(/^\d{1,5}(\/(tcp|udp))?$/, 'must be a port such as 8080 or "8080/tcp"'),
]);

export const imageSchema = z
  .object({
    name: z.string().regex(NAME_RE, 'must be lowercase letters, digits, ".", "_" or "-", such as "api-base"'),
    /** `scratch`, a Debian suite as `debian:bookworm`, or the name of another image in this stack. @default "scratch" */
    from: z.string().min(1).default('scratch'),
    /** Debian package names, optionally pinned: `"curl"`, `"curl=7.88.1-10+deb12u12"`. */
    packages: z
      .array(
        z.string().regex(PACKAGE_RE, 'must be a Debian package name, optionally "=version", such as "curl"'),
      )
      .default([]),
    /** `minimal` installs only what is declared and its dependencies; `minbase` adds Debian's required packages. @default "minimal" */
    profile: z.enum(['minimal', 'minbase']).default('minimal'),
    /** Globs of image paths left out; a leading `!` keeps a path back in. @default DEFAULT_EXCLUDES */
    exclude: z.array(z.string()).default([...DEFAULT_EXCLUDES]),
    files: z.array(fileSchema).default([]),
    users: z.array(userSchema).default([]),
    groups: z.array(groupSchema).default([]),
    env: z.record(z.string(), z.string()).default({}),
    workdir: absolutePath.optional(),
    /** The user the image runs as: a name from `users`, or `uid[:gid]`. */
    user: z.string().optional(),
    entrypoint: z.array(z.string()).optional(),
    cmd: z.array(z.string()).optional(),
    ports: z.array(portSchema).default([]),
    labels: z.record(z.string(), z.string()).default({}),
    app: appSchema.optional(),
    run: z.array(runStepSchema).default([]),
    /**
     * Mount points, as Docker's VOLUME: empty directories baked into the image (the root is
     * read-only, so a mount needs its target to exist), recorded in the config's `Volumes`. A
     * stateful service's volumes and a service's `config.path` mount here.
     */
    volumes: z.array(absolutePath.refine((p) => p !== '/', { message: 'must not be "/"' })).default([]),
  })
  .strict();

export const mirrorSchema = z.union([
  z.string().url(),
  z
    .object({
      url: z.string().url(),
      /** The archive serving `<suite>-security`. @default url */
      securityUrl: z.string().url().optional(),
      /** An OpenPGP keyring (binary, as apt's Signed-By) that signs the archive. @default /usr/share/keyrings/debian-archive-keyring.gpg */
      keyring: z.string().optional(),
      components: z.array(z.string()).default(['main']),
    })
    .strict(),
]);

export const stackSchema = z
  .object({
    /** The Debian archive. @default the machine's apt sources */
    mirror: mirrorSchema.optional(),
    /** Debian architecture to bake for. @default the host's (amd64 on x86-64) */
    arch: z
      .string()
      .regex(/^[a-z0-9]+$/)
      .optional(),
    images: z.array(imageSchema).default([]),
    services: z.array(serviceSchema).default([]),
    /** Engines beyond this machine, each run by its own kiln control plane (docs/regions.md). */
    targets: targetsSchema.default({}),
    /** Regions: a target and the registry its images are replicated to (docs/regions.md). */
    regions: regionsSchema.default({}),
  })
  .strict();

/** An image as written by the user (defaults optional). */
export type ImageInput = z.input<typeof imageSchema>;
/** An image after validation, every default filled in. */
export type ImageSpec = z.output<typeof imageSchema>;
export type FileSpec = z.output<typeof fileSchema>;
export type UserSpec = z.output<typeof userSchema>;
export type GroupSpec = z.output<typeof groupSchema>;
export type AppSpec = z.output<typeof appSchema>;
export type RunStep = z.output<typeof runStepSchema>;
export type MirrorSpec = z.output<typeof mirrorSchema>;
/** A stack as written by the user. */
export type StackInput = z.input<typeof stackSchema>;
/** A stack after validation. */
export type StackSpec = z.output<typeof stackSchema>;
