// CNI_ARGS keys the IPAM layer understands; plugins that delegate to it accept them too.
export const ipamArgKeys = ['IP'] as const;
