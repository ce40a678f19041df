"""The other process of the TUI soak test: agents that send, reply to old threads (which
re-orders the thread list) and write to the person, for a given number of seconds.

python tests/soak_writer.py DB SECONDS PERSON SEED
"""

from __future__ import annotations

import random
import sys
import time

from mesh_core import Mesh, MeshError


def main(db: str, seconds: float, person: str, seed: int) -> int:
    rng = random.Random(seed)
    mesh = Mesh(db)
    agents = [
        mesh.register(f"soak-{n:02d}", description="soak writer").session_id for n in range(12)
    ]
    roots: list[int] = []
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        sender = rng.choice(agents)
        roll = rng.random()
        try:
            if roll < 0.25 or not roots:
                peer = f"soak-{rng.randrange(12):02d}"
                if peer == mesh.agent(sender).agent_name:
                    continue
                message = mesh.send(sender, peer, f"new thread {sent} [b]x[/b]", new_thread=True)
                roots.append(message.thread_id)
            elif roll < 0.85:
                root = rng.choice(roots)  # an old thread jumps to the top
                mesh.reply(sender, root, f"reply {sent}\nsecond line")
            else:
                priority = rng.choice(["normal", "high", "urgent"])
                mesh.send(sender, person, f"to the person {sent}", priority=priority)
            sent += 1
        except MeshError:
            pass  # rate limits and the like: the next try differs
        time.sleep(rng.uniform(0.01, 0.15))
    mesh.close()
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
