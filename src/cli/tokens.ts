/**
 * `kiln tokens create|list|revoke`: the API tokens, managed through the API with an `admin`
 * token. A new token's secret is printed once; kiln keeps only its hash.
 */
import { Command, Option } from 'commander';
import type { TokenCreatedJson, TokenJson, TokenScopeJson } from '../api/index.js';
import { printJson, table } from './common.js';
import { clientFor, shortTime, withConnection, type ConnectionOptions } from './fleet-common.js';

/** What `kiln tokens create` prints: the token, then its secret with the warning that it is shown once. */
export function createdText(created: TokenCreatedJson): string {
  const { token, secret } = created;
  return (
    `token ${token.name} created with scope ${token.scopes.join(', ')} (id ${token.id})\n` +
    'secret, shown this once (kiln stores only its hash and cannot show it again; keep it now):\n' +
    `  ${secret}\n`
  );
}

/** `kiln tokens list`: NAME SCOPES CREATED REVOKED ID, oldest first. */
export function tokensTable(tokens: readonly TokenJson[]): string {
  const rows = [['NAME', 'SCOPES', 'CREATED', 'REVOKED', 'ID']];
  for (const t of tokens) {
    rows.push([
      t.name,
      t.scopes.join(','),
      shortTime(t.createdAt),
      t.revokedAt === undefined ? '-' : shortTime(t.revokedAt),
      t.id,
    ]);
  }
  return table(rows);
}

/** `kiln tokens …`. */
export function tokensCommand(): Command {
  const root = new Command('tokens').description(
    'manage the API tokens (needs an admin token): create, list, revoke; only their hashes are stored',
  );
  root.addCommand(
    withConnection(
      new Command('create')
        .description('create a token and print its secret, once (it is not stored, only its hash)')
        .argument('<name>', 'the token name, recorded as the actor of what it does, such as ci')
        .addOption(
          new Option('--scope <scope>', 'what it may do: admin implies deploy, which implies read')
            .choices(['read', 'deploy', 'admin'])
            .makeOptionMandatory(),
        )
        .option('--json', 'print JSON (TokenCreatedJson, secret included; docs/api.md)'),
    ).action(
      async (
        name: string,
        opts: ConnectionOptions & { scope: TokenScopeJson; json?: boolean },
        cmd: Command,
      ) => {
        const api = await clientFor(cmd, opts);
        const created = await api.createToken({ name, scopes: [opts.scope] });
        if (opts.json) printJson(created);
        else process.stdout.write(createdText(created));
      },
    ),
  );
  root.addCommand(
    withConnection(
      new Command('list')
        .description('list every token, revoked ones included, without secrets or hashes')
        .option('--json', 'print JSON (TokenJson[]; docs/api.md)'),
    ).action(async (opts: ConnectionOptions & { json?: boolean }, cmd: Command) => {
      const tokens = await (await clientFor(cmd, opts)).tokens();
      if (opts.json) printJson(tokens);
      else process.stdout.write(tokensTable(tokens));
    }),
  );
  root.addCommand(
    withConnection(
      new Command('revoke')
        .description('revoke a token at once (its sessions end too); the last live admin token is refused')
        .argument('<name>', 'the live token of that name (or a token id from kiln tokens list)')
        .option('--json', 'print JSON (TokenJson; docs/api.md)'),
    ).action(async (name: string, opts: ConnectionOptions & { json?: boolean }, cmd: Command) => {
      const token = await (await clientFor(cmd, opts)).revokeToken(name);
      if (opts.json) printJson(token);
      else process.stdout.write(`token ${token.name} revoked (id ${token.id})\n`);
    }),
  );
  return root;
}
