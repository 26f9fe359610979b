/** A security setting mayu cannot start with (bad token file, TLS material, report key). */
export class SecurityConfigError extends Error {}
