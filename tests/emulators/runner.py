"""runner - a child process that holds one model's memory until its stdin closes
(as an Ollama runner or a llama-server child does for its parent)."""
import sys

from gpumem import GpuMemory


def main():
    mem = GpuMemory()
    try:
        mem.hold(int(sys.argv[1]))
    except MemoryError as e:
        print("oom %s" % e, flush=True)
        return 1
    print("loaded", flush=True)
    sys.stdin.buffer.read()  # until the parent closes it or dies
    mem.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
