// A host operation that failed; `reason` is the kernel's or the tool's own words.
export class HostError extends Error {
  constructor(
    message: string,
    readonly reason: string,
    readonly notFound = false,
    // The batch step that failed, when the error comes from one.
    readonly failedStep?: string,
  ) {
    super(message);
    this.name = 'HostError';
  }
}
