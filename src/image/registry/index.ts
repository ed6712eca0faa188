/** The OCI distribution client: references, credentials, pulls into the content store. */
export { parseReference, formatReference, familiarReference, withDigest, dockerHubRegistry } from "./reference.js";
export { pullImage, readPulledImage, startPull, type PullOptions, type StartedPull } from "./pull.js";
export { BlobFeed, feedsFor, FeedPool } from "./blob-feed.js";
export { login, logout, normalizeRegistryHost, type LoginOptions } from "./login.js";
export { lookupCredentials, skiffAuthPath, dockerConfigPath, type Credentials } from "./credentials.js";
export { RegistryClient, type RegistryClientOptions } from "./client.js";
export { blobPath, blobsDir, hasBlob, ingestDir, readBlob } from "./blob-store.js";
export { lookupRef, readRefIndex, refsPath, updateRefs, type RefIndex } from "./refs.js";
export { defaultPlatform, formatPlatform, parsePlatform } from "./platform.js";
export { isLoopbackRegistry } from "./transport.js";
