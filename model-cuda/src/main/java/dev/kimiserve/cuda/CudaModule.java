package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;

/**
 * Kernels compiled ahead of time ({@code build-kernels.sh}: a fatbin with sm_90 machine code and PTX the driver
 * compiles for other cards), loaded from this jar's resources. No run-time compilation: the GPU hosts have no CUDA 12
 * NVRTC for JCuda to call. For kernel work, {@code kimi.cuda.kernels} / {@code KIMI_CUDA_KERNELS} names a folder whose
 * {@code NAME.fatbin} files are loaded instead (images built with {@code build-kernels.sh DIR}).
 */
public final class CudaModule implements AutoCloseable {
    private final CudaDevice device;
    private final CUmodule module = new CUmodule();
    private final String name;

    public CudaModule(CudaDevice device, String name) {
        this.device = device;
        this.name = name;
        byte[] image = image(name + ".fatbin");
        device.makeCurrent();
        cuModuleLoadData(module, image);
    }

    private static byte[] image(String file) {
        String dir = System.getProperty("kimi.cuda.kernels", System.getenv("KIMI_CUDA_KERNELS"));
        if (dir == null || dir.isBlank()) {
            return resource(file);
        }
        java.nio.file.Path path = java.nio.file.Path.of(dir.trim(), file);
        try {
            System.getLogger(CudaModule.class.getName()).log(System.Logger.Level.INFO, "kernel image " + path + " (kimi.cuda.kernels)");
            return java.nio.file.Files.readAllBytes(path);
        } catch (IOException e) {
            throw new UncheckedIOException("kimi.cuda.kernels / KIMI_CUDA_KERNELS: cannot read kernel image " + path, e);
        }
    }

    static byte[] resource(String file) {
        try (InputStream in = CudaModule.class.getResourceAsStream(file)) {
            if (in == null) {
                throw new IllegalStateException("kernel image " + file + " is missing from the model-cuda jar (run model-cuda/build-kernels.sh)");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read kernel image " + file, e);
        }
    }

    public CUfunction function(String entry) {
        CUfunction f = new CUfunction();
        device.makeCurrent();
        cuModuleGetFunction(f, module, entry);
        return f;
    }

    public String name() {
        return name;
    }

    @Override
    public void close() {
        device.makeCurrent();
        cuModuleUnload(module);
    }
}
