#!/usr/bin/env python3
"""The ORAS Python client (PyPI `oras`) as a second registry client for the package tests.

    oras_client.py push REFERENCE PROGRAM CONFIG_JSON   # a Wasm artifact, as ORAS users push one
    oras_client.py pull REFERENCE DIR                   # the layers, saved by their titles

The registry is spoken to over plain HTTP (it is on loopback in the tests)."""

import os
import sys

import oras.client


def client(reference):
    return oras.client.OrasClient(hostname=reference.split("/", 1)[0], insecure=True)


def main():
    command, reference = sys.argv[1], sys.argv[2]
    if command == "push":
        program, config = sys.argv[3], sys.argv[4]
        os.chdir(os.path.dirname(os.path.abspath(program)))
        client(reference).push(
            target=reference,
            files=[f"{os.path.basename(program)}:application/wasm"],
            manifest_config=f"{os.path.abspath(config)}:application/vnd.wasm.config.v0+json",
            disable_path_validation=True,
        )
    elif command == "pull":
        client(reference).pull(target=reference, outdir=sys.argv[3])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
