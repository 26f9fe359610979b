// Turns the security flags (passed in by src/cli/mayu.ts) and config.yaml's `security:` keys
// into what the server needs. Flags win over config keys; relative paths in config.yaml are
// relative to its folder. Every problem is a SecurityConfigError that stops the start.
import path from 'node:path';
import type { SecurityConfig } from '../config/schema.ts';
import { checkAdminToken, readAdminTokenFile, type AdminTokenSource } from './admin-token.ts';
import { loadOrCreateReportKey } from './report-key.ts';
import { SecurityConfigError } from './security-error.ts';
import { loadTlsMaterial, type TlsMaterial } from './tls-material.ts';

export interface SecurityOptions {
  /** Token text from the environment (MAYU_ADMIN_TOKEN). */
  adminToken?: string;
  adminTokenFile?: string;
  reportKeyFile?: string;
  insecureReports?: boolean;
  tlsPort?: number;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tlsCaFile?: string;
}

export interface SecuritySettings {
  /** undefined: the admin API is open, as in 0.11. */
  adminToken?: string;
  reportKey: Buffer;
  insecureReports: boolean;
  tls?: TlsMaterial & { port: number };
  /** Lines for the start-up log. */
  warnings: string[];
  notes: string[];
}

async function adminTokenSource(opts: SecurityOptions, cfg: SecurityConfig, fromConfig: (p: string) => string, warnings: string[]): Promise<AdminTokenSource | undefined> {
  if (opts.adminTokenFile !== undefined) {
    if (opts.adminToken !== undefined) warnings.push('MAYU_ADMIN_TOKEN is ignored: --admin-token-file is given');
    const r = await readAdminTokenFile(opts.adminTokenFile, '--admin-token-file');
    warnings.push(...r.warnings);
    return r.source;
  }
  if (opts.adminToken !== undefined) return { origin: 'MAYU_ADMIN_TOKEN', text: opts.adminToken };
  if (cfg.admin_token_file !== undefined) {
    const r = await readAdminTokenFile(fromConfig(cfg.admin_token_file), 'security.admin_token_file');
    warnings.push(...r.warnings);
    return r.source;
  }
  return undefined;
}

async function tlsSettings(opts: SecurityOptions, cfg: SecurityConfig, fromConfig: (p: string) => string, httpPort: number, now: Date) {
  const port = opts.tlsPort ?? cfg.tls?.port;
  const certFile = opts.tlsCertFile ?? (cfg.tls?.cert_file && fromConfig(cfg.tls.cert_file));
  const keyFile = opts.tlsKeyFile ?? (cfg.tls?.key_file && fromConfig(cfg.tls.key_file));
  const caFile = opts.tlsCaFile ?? (cfg.tls?.ca_file && fromConfig(cfg.tls.ca_file));
  const given = { '--tls-port': port, '--tls-cert-file': certFile, '--tls-key-file': keyFile };
  const missing = Object.entries(given).filter(([, v]) => v === undefined).map(([k]) => k);
  if (missing.length === 3) {
    if (caFile !== undefined) throw new SecurityConfigError('--tls-ca-file needs --tls-port, --tls-cert-file and --tls-key-file');
    return undefined;
  }
  if (missing.length > 0) throw new SecurityConfigError(`TLS needs --tls-port, --tls-cert-file and --tls-key-file together; missing: ${missing.join(', ')}`);
  if (!Number.isInteger(port) || port! < 0 || port! > 65535) throw new SecurityConfigError(`--tls-port ${port}: expected a port number 0-65535`);
  if (port !== 0 && port === httpPort) throw new SecurityConfigError(`--tls-port ${port} is the same as --http-port: the TLS port needs a port of its own`);
  const material = await loadTlsMaterial({ certFile: certFile!, keyFile: keyFile!, caFile }, now);
  return { ...material, port: port! };
}

export async function resolveSecurity(o: {
  options: SecurityOptions;
  config: SecurityConfig;
  configFile: string;
  defaultReportKeyFile: string;
  httpPort: number;
  now: Date;
}): Promise<SecuritySettings> {
  const fromConfig = (p: string) => path.resolve(path.dirname(o.configFile), p);
  const warnings: string[] = [];
  const notes: string[] = [];
  const source = await adminTokenSource(o.options, o.config, fromConfig, warnings);
  const adminToken = source && checkAdminToken(source);
  // TLS first: a bad certificate must stop the start before anything is created on disk.
  const tls = await tlsSettings(o.options, o.config, fromConfig, o.httpPort, o.now);
  if (tls) warnings.push(...tls.warnings);

  const reportKeyFile = o.options.reportKeyFile ?? (o.config.report_key_file ? fromConfig(o.config.report_key_file) : o.defaultReportKeyFile);
  const reportKey = await loadOrCreateReportKey(reportKeyFile);
  warnings.push(...reportKey.warnings);
  if (reportKey.created) notes.push(`created report key ${reportKeyFile}: keep it, machines' report tokens derive from it`);

  const insecureReports = o.options.insecureReports ?? o.config.insecure_reports;
  if (!adminToken) {
    warnings.push('no admin token configured: the admin API is open, anyone who reaches mayu can list and change hosts (set --admin-token-file or MAYU_ADMIN_TOKEN)');
  } else if (insecureReports) {
    warnings.push('insecure reports: set_installed and boot_complete are accepted without a report token (0.11 machines); anyone on the network can send them');
  }
  return { adminToken, reportKey: reportKey.key, insecureReports, tls, warnings, notes };
}
