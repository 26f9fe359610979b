// mayuctl's admission verbs (issue 17): pending, approve, reject, inventory add|remove|list.
import { columnize } from './columnize.ts';
import type { CommandContext } from './commands.ts';

const path = (serial: string) => encodeURIComponent(serial);
const profileBody = (profile?: string) => (profile === undefined ? '' : JSON.stringify({ Profile: profile }));

interface PendingAnswer {
  Mode: string;
  Machines: { Serial: string; Status: string; FirstSeen: string; LastSeen?: string; MacAddresses: string[]; Source: string }[];
}

export async function pendingCommand(ctx: CommandContext, json: boolean): Promise<void> {
  const text = await ctx.client.admin('GET', '/pending');
  if (json) {
    ctx.out(text.trim());
    return;
  }
  const answer = JSON.parse(text) as PendingAnswer;
  if (answer.Machines.length === 0) {
    ctx.out(`no machine is waiting (admission mode ${answer.Mode})`);
    return;
  }
  const rows = answer.Machines.map((m) => [m.Serial, m.Status, m.FirstSeen, m.LastSeen ?? '-', m.MacAddresses.join(',') || '-', m.Source || '-']);
  ctx.out(columnize([['Serial', 'Status', 'FirstSeen', 'LastSeen', 'MACs', 'Source'], ...rows]));
}

export async function approveCommand(ctx: CommandContext, serial: string, profile?: string): Promise<void> {
  const host = JSON.parse(await ctx.client.admin('PUT', `/host/${path(serial)}/approve`, profileBody(profile))) as { Serial: string; Profile?: string; InternalAddr?: string };
  ctx.out(`${host.Serial}: approved, profile ${host.Profile ?? 'default'}, address ${host.InternalAddr ?? '-'}`);
}

export async function rejectCommand(ctx: CommandContext, serial: string): Promise<void> {
  await ctx.client.admin('PUT', `/host/${path(serial)}/reject`, '');
}

export async function inventoryCommand(ctx: CommandContext, action: string, serial: string | undefined, profile: string | undefined, json: boolean): Promise<void> {
  if (action === 'list') {
    const text = await ctx.client.admin('GET', '/inventory');
    if (json) {
      ctx.out(text.trim());
      return;
    }
    const entries = JSON.parse(text) as { serial: string; profile?: string; state: string }[];
    ctx.out(columnize([['Serial', 'Profile', 'State'], ...entries.map((e) => [e.serial, e.profile ?? '-', e.state])]));
    return;
  }
  if (serial === undefined) throw new Error(`mayuctl inventory ${action} needs a serial`);
  if (action === 'add') await ctx.client.admin('PUT', `/inventory/${path(serial)}`, profileBody(profile));
  else await ctx.client.admin('DELETE', `/inventory/${path(serial)}`);
}
