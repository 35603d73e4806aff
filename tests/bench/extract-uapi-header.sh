#!/bin/sh
# SPDX-License-Identifier: MIT
# extract-uapi-header.sh TARBALL MEMBER OUTPUT
#
# Writes the file */MEMBER of the kernel source tarball TARBALL (e.g.
# lib/test_hmm_uapi.h of /usr/src/linux-source-6.12.tar.xz) to OUTPUT.
# The benchmark takes test_hmm's uapi header from the very source the VM
# kernel is built from, instead of keeping a copy in the tree.
set -eu
tarball=$1
member=$2
out=$3
tmp=$out.tmp
if ! tar -xOf "$tarball" --wildcards "*/$member" >"$tmp" || ! [ -s "$tmp" ]; then
	rm -f "$tmp"
	echo "extract-uapi-header.sh: no */$member in $tarball" >&2
	exit 1
fi
mv "$tmp" "$out"
