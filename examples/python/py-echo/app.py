"""A Python guest, built with componentize-py against wit/airssys.wit.

Messages: `upper TEXT` replies TEXT in capitals; `count` keeps a durable
counter in the actor's storage (when the host gives it a data directory);
`spin` loops forever (the host stops it); `hog` allocates without bound (the
host's memory limit stops it); anything else is echoed back.
"""
from typing import List, Optional, Tuple

import wit_world
from wit_world import exports
from wit_world.imports import services, storage, types
from componentize_py_types import Err


class Lifecycle(exports.Lifecycle):
    def initialize(self, config: List[Tuple[str, str]]) -> None:
        services.log(services.LogLevel.INFO, "python guest ready", [])

    def handle_message(self, msg: types.Message) -> Optional[bytes]:
        text = msg.payload.decode("utf-8", "replace")
        if text.startswith("upper "):
            return text[len("upper "):].upper().encode()
        if text == "count":
            try:
                return str(storage.increment("count", 1)).encode()
            except Err as e:
                raise Err(types.Error_Unavailable(str(e.value)))
        if text == "spin":
            n = 0
            while True:
                n += 1
        if text == "hog":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        return msg.payload

    def handle_callback(self, correlation_id, reply) -> None:
        return None

    def metadata(self) -> types.ComponentMetadata:
        return types.ComponentMetadata("py-echo", "0.1.0", "A Python guest")

    def health(self) -> types.HealthStatus:
        return types.HealthStatus.HEALTHY

    def shutdown(self) -> None:
        return None
