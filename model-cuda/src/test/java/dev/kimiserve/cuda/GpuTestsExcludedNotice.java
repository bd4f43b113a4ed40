package dev.kimiserve.cuda;

import java.util.Arrays;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestPlan;

/**
 * Says in the build's output why the GPU tests did not run: the build excludes the tag {@code gpu} by default
 * (surefire passes the excluded tags as {@code kimi.test.excludedGroups}), and this machine's reason for having no
 * usable CUDA device. Silent where the tag is not excluded (the GPU machine's JUnit console,
 * {@code -Dkimi.test.excludedGroups=}).
 */
public final class GpuTestsExcludedNotice implements TestExecutionListener {
    @Override
    public void testPlanExecutionStarted(TestPlan plan) {
        String excluded = System.getProperty("kimi.test.excludedGroups", "");
        if (Arrays.stream(excluded.split(",")).map(String::trim).anyMatch("gpu"::equals)) {
            System.out.println(notice(CudaDevice.unavailableReason()));
        }
    }

    static String notice(String unavailableReason) {
        return "GPU tests (tag gpu) skipped by tag: excluded by default; on a CUDA machine"
                + " -Dkimi.test.excludedGroups= -Dkimi.test.groups=gpu runs them (model-cuda/device-run.sh on the lent GPU machine); here "
                + (unavailableReason == null ? "a CUDA device is usable" : "no CUDA device: " + unavailableReason);
    }
}
