import { HostDecodeError } from '../core/host.ts';
import { HostChangeError, ProfileQuantityError } from '../core/host-changes.ts';
import { HostDataError } from '../core/host-data.ts';
import { InstallFailureReportError } from '../core/install-failures.ts';
import { RangeExhaustedError } from '../core/addresses.ts';
import { InvalidSerialError } from '../core/serial.ts';
import { IllegalTransitionError } from '../core/states.ts';
import { StoreConflictError, StoreUnavailableError } from '../store/store.ts';
import { UnknownHostError, UnknownProfileError } from '../service/mayu-service.ts';
import { HostEditRefusedError } from '../store/store.ts';
import { NotStoredError } from '../fs/write-errors.ts';
import { NewHostsRefusedError } from '../store/disk-space.ts';
import { HistoryPendingError } from '../store/store.ts';

/** An error whose message is meant for the client as the plain-text body. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Readonly<Record<string, string>> = {}) {
    super(message);
  }
}

const CLIENT_ERRORS = [UnknownHostError, UnknownProfileError, HostChangeError, IllegalTransitionError, InvalidSerialError, HostDataError, HostDecodeError, InstallFailureReportError];

/** Status for an error thrown by the core or service; undefined means a server fault (500). */
export function statusFor(err: unknown): number | undefined {
  if (err instanceof HttpError) return err.status;
  // The request is fine, the cluster's state refuses it (the operator may force it).
  if (err instanceof ProfileQuantityError) return 409;
  // The host's conf.json was edited by hand into something mayu refuses: the operator fixes it.
  if (err instanceof HostEditRefusedError) return 409;
  if (CLIENT_ERRORS.some((c) => err instanceof c)) return 400;
  // Not the client's fault, and not ours either: the operator must widen ip_range.
  if (err instanceof RangeExhaustedError) return 503;
  // 507 Insufficient Storage: the disk refused the change (nothing of it stands), or a new host
  // was refused to keep the last free space for known hosts, or the change stands in the
  // journal but git could not take it yet (the message says which).
  if (err instanceof NotStoredError || err instanceof NewHostsRefusedError || err instanceof HistoryPendingError) return 507;
  // etcd store: etcd unreachable, or another replica's change won; nothing was written, retry.
  if (err instanceof StoreUnavailableError || err instanceof StoreConflictError) return 503;
  return undefined;
}
