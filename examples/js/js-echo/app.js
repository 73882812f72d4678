// A JavaScript guest, built by componentize-js with its defaults (which import
// wasi:http for fetch) against wit/airssys.wit. It echoes each message in
// capitals, and names itself.
export const lifecycle = {
  initialize(config) {},
  handleMessage(msg) {
    const text = new TextDecoder().decode(msg.payload);
    return new TextEncoder().encode(`js: ${text.toUpperCase()}`);
  },
  handleCallback(correlationId, reply) {},
  metadata() {
    return { name: "js-echo", version: "0.1.0", description: "A JavaScript guest" };
  },
  health() {
    return "healthy";
  },
  shutdown() {},
};
