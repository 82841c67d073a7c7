// Network configuration lists are JSON; the build bundles conf/*.conflist as such.
declare module '*.conflist' {
  const conflist: { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> };
  export default conflist;
}
