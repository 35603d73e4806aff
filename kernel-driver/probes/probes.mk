# SPDX-License-Identifier: GPL-2.0
# Kbuild fragment: generates $(obj)/hmmgpu_probes.h (HMMGPU_HAVE_* answers
# of probes/run.sh for the kernel being built against) before any object of
# $(hmmgpu-probe-users) compiles.  Included by ../Kbuild and by the test
# dmaengine provider's Kbuild.  The probes are compiled with the kernel's own
# compiler and c_flags (less the dependency-file option), so the answer is
# the one the real build would get; the header is regenerated when a probe
# or that command line changes (a different kernel tree).
hmmgpu-probe-dir := $(src)/probes

quiet_cmd_hmmgpu_probes = PROBES  $@
      cmd_hmmgpu_probes = $(CONFIG_SHELL) $(hmmgpu-probe-dir)/run.sh $@ \
	$(hmmgpu-probe-dir) $(objtree)/Module.symvers \
	$(CC) $(filter-out -Wp$(comma)-MMD$(comma)%,$(c_flags))

$(obj)/hmmgpu_probes.h: $(wildcard $(hmmgpu-probe-dir)/*.c) \
		$(wildcard $(hmmgpu-probe-dir)/*.sym) \
		$(hmmgpu-probe-dir)/run.sh FORCE
	$(call if_changed,hmmgpu_probes)

targets += hmmgpu_probes.h
clean-files += hmmgpu_probes.h

$(addprefix $(obj)/,$(hmmgpu-probe-users)): $(obj)/hmmgpu_probes.h
