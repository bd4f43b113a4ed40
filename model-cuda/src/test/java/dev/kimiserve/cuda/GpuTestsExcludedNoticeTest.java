package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class GpuTestsExcludedNoticeTest {
    @Test
    void theNoticeNamesTheTagHowToRunThemAndWhyThisMachineCannot() {
        String notice = GpuTestsExcludedNotice.notice("the CUDA driver library cannot be loaded");
        assertTrue(notice.contains("tag gpu") && notice.contains("-Dkimi.test.groups=gpu")
                && notice.contains("no CUDA device: the CUDA driver library cannot be loaded"), notice);
        assertTrue(GpuTestsExcludedNotice.notice(null).contains("a CUDA device is usable"));
    }
}
