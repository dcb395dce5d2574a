/**
 * TLS for the API: the server's certificate and key, read from files and checked before anything
 * starts, and the certificate a client trusts on top of the system's roots. Every problem names
 * the file and how to fix it.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { UnavailableError, ValidationError, type ValidationIssue } from '../errors/index.js';

/** The PEM certificate (chain) and private key the API serves HTTPS with. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** Where the server's certificate and key are (`kiln server --tls-cert FILE --tls-key FILE`). */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * The openssl arguments that make a self-signed P-256 certificate for `127.0.0.1` and `localhost`
 * with an unencrypted key: what the errors suggest and what {@link makeSelfSigned} runs.
 */
export function selfSignedArgs(certFile: string, keyFile: string, days = 365): string[] {
  return [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    String(days),
    '-subj',
    '/CN=kiln',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ];
}

/** How to make a certificate for a loopback API, for the fixes the errors suggest. */
export const SELF_SIGNED_HINT = `openssl ${selfSignedArgs('cert.pem', 'key.pem').join(' ')}`;

/** A certificate and key made by {@link makeSelfSigned}: their files and PEM. */
export interface SelfSignedCert extends TlsFiles, TlsMaterial {}

/**
 * Makes a self-signed certificate (valid `days`) and its key in `dir` as `<name>.crt` and
 * `<name>.key`, with the system's openssl; for tests and local setups.
 *
 * @example
 * const cert = await makeSelfSigned(dir, 'server', 1);
 * await startApiServer({ plane, tokens, version, tls: cert });
 */
export async function makeSelfSigned(dir: string, name: string, days = 365): Promise<SelfSignedCert> {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  try {
    await execa('openssl', selfSignedArgs(certFile, keyFile, days));
  } catch (err) {
    throw new UnavailableError(`making a self-signed certificate with openssl: ${reason(err)}`, {
      cause: err,
    });
  }
  return { certFile, keyFile, cert: await readFile(certFile), key: await readFile(keyFile) };
}

/**
 * Reads and checks the server's certificate and key: both files readable, the certificate a PEM
 * X.509 certificate valid now, the key an unencrypted PEM private key that belongs to it. Every
 * problem found is reported together (ValidationError, exit 2).
 *
 * @example
 * const tls = await readTlsFiles({ certFile: 'cert.pem', keyFile: 'key.pem' });
 * await startApiServer({ plane, tokens, version, tls });
 */
export async function readTlsFiles(files: TlsFiles, now: Date = new Date()): Promise<TlsMaterial> {
  const issues: ValidationIssue[] = [];
  const certFix = `give the server's certificate in PEM, made for example with \`${SELF_SIGNED_HINT}\``;
  const keyFix = "give the certificate's private key in PEM, unencrypted (decrypt it with `openssl pkey`)";
  const cert = await readPem(files.certFile, '--tls-cert', certFix, issues);
  const key = await readPem(files.keyFile, '--tls-key', keyFix, issues);
  let x509: X509Certificate | undefined;
  if (cert !== undefined) {
    try {
      x509 = new X509Certificate(cert);
    } catch (err) {
      issues.push(
        problem('--tls-cert', files.certFile, `is not a PEM certificate (${reason(err)})`, certFix),
      );
    }
  }
  if (x509 !== undefined && Date.parse(x509.validTo) < now.getTime()) {
    issues.push(problem('--tls-cert', files.certFile, `expired on ${x509.validTo}`, `renew it: ${certFix}`));
  }
  let privateKey: KeyObject | undefined;
  if (key !== undefined) {
    try {
      privateKey = createPrivateKey(key);
    } catch (err) {
      issues.push(
        problem('--tls-key', files.keyFile, `is not a usable PEM private key (${reason(err)})`, keyFix),
      );
    }
  }
  if (x509 !== undefined && privateKey !== undefined && !x509.checkPrivateKey(privateKey)) {
    issues.push(
      problem(
        '--tls-key',
        files.keyFile,
        `is not the private key of the certificate in ${files.certFile}`,
        'give the key the certificate was made with, or make both again together',
      ),
    );
  }
  if (issues.length > 0 || cert === undefined || key === undefined) {
    throw new ValidationError('TLS certificate and key', issues);
  }
  return { cert, key };
}

/**
 * Reads the certificate a client trusts for the API's HTTPS (a self-signed server certificate, or
 * the CA that issued it). `from` says where the path came from (`--ca`, `KILN_CA`, server.json).
 */
export async function readCaFile(file: string, from: string): Promise<Buffer> {
  const fix = `point ${from} at the server's certificate (or its CA's) in PEM`;
  const issues: ValidationIssue[] = [];
  const pem = await readPem(file, from, fix, issues);
  if (pem !== undefined) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      issues.push(problem(from, file, `is not a PEM certificate (${reason(err)})`, fix));
    }
  }
  if (issues.length > 0 || pem === undefined) throw new ValidationError('TLS trust', issues);
  return pem;
}

async function readPem(
  file: string,
  flag: string,
  fix: string,
  issues: ValidationIssue[],
): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? reason(err)})`;
    issues.push(problem(flag, file, what, fix));
    return undefined;
  }
}

function problem(flag: string, file: string, message: string, fix: string): ValidationIssue {
  return { path: flag, message: `${file} ${message}`, fix };
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
