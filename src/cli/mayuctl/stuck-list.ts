// `mayuctl list --stuck`: the hosts GET /admin/stuck names, as the list table (any --fields)
// plus SINCE (when the host entered its state) and FOR (how long); --json prints the route's answer.
import { formatStuckFor, type StuckHost } from '../../core/stuck.ts';
import { BadAnswerError } from './client.ts';
import { decodeHosts, type CommandContext } from './commands.ts';
import { formatList } from './format.ts';

function parseStuck(data: unknown): StuckHost[] {
  const ok = (e: unknown): e is StuckHost => {
    const o = e as Record<string, unknown> | null;
    return typeof o === 'object' && o !== null && typeof o['Serial'] === 'string' && typeof o['State'] === 'string'
      && typeof o['Since'] === 'string' && typeof o['Seconds'] === 'number';
  };
  if (!Array.isArray(data) || !data.every(ok)) throw new BadAnswerError('/admin/stuck: expected a JSON array of {Serial, State, Since, Seconds, From}');
  return data;
}

export async function printStuck(ctx: CommandContext, args: { fields: string[]; legend: boolean; json: boolean }): Promise<void> {
  const stuck = parseStuck(await ctx.client.stuck());
  if (args.json) {
    ctx.out(JSON.stringify(stuck, null, 2));
    return;
  }
  const bySerial = new Map(stuck.map((s) => [s.Serial, s]));
  const hosts = decodeHosts(await ctx.client.listHosts()).filter((h) => bySerial.has(h.Serial ?? ''));
  const of = (serial: string | undefined) => bySerial.get(serial ?? '')!;
  const table = formatList(hosts, {
    fields: args.fields,
    legend: args.legend,
    extra: [
      { name: 'since', cell: (h) => of(h.Serial).Since },
      { name: 'for', cell: (h) => formatStuckFor(of(h.Serial).Seconds) },
    ],
  });
  if (table !== '') ctx.out(table);
}
