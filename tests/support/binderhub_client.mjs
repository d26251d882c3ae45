// Build a spec with BinderHub's npm client (@jupyterhub/binderhub-client), build-only.
//
//   node binderhub_client.mjs CLIENT_JS BUILD_ENDPOINT PROVIDER_SPEC [TOKEN]
//
// Prints each event the client yields as one JSON line, and stops reading
// after "ready" or "failed" (the client leaves that to its caller).
// The client is written for browsers: Node needs `window` (fetch, timers)
// and a `document` it can ask whether the page is hidden.
import { pathToFileURL } from "node:url";

globalThis.window = globalThis;
globalThis.document = {
  hidden: false,
  cookie: "",
  addEventListener() {},
  removeEventListener() {},
};

const [clientJs, endpoint, providerSpec, token] = process.argv.slice(2);
const { BinderRepository } = await import(pathToFileURL(clientJs).href);
const repo = new BinderRepository(providerSpec, new URL(endpoint), {
  apiToken: token || undefined,
  buildOnly: true,
});
for await (const event of repo.fetch()) {
  console.log(JSON.stringify(event));
  if (event.phase === "ready" || event.phase === "failed") {
    repo.close();
    break;
  }
}
process.exit(0);
