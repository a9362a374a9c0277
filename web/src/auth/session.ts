import { AuthManager, browserAuthDeps } from './manager';

/** This tab's session. */
export const auth = new AuthManager(browserAuthDeps());
