package dev.kimiserve.cuda;

import java.lang.reflect.Field;
import jcuda.NativePointerObject;

/** Raw addresses of JCuda handles and device pointers, for libraries called through Java's FFM (cuBLASLt). */
final class Native {
    private static final Field POINTER;
    private static final Field OFFSET;

    static {
        try {
            POINTER = NativePointerObject.class.getDeclaredField("nativePointer");
            POINTER.setAccessible(true);
            Field offset = null;
            try {
                offset = jcuda.Pointer.class.getDeclaredField("byteOffset");
                offset.setAccessible(true);
            } catch (NoSuchFieldException e) {
                // this JCuda keeps offsets in nativePointer itself
            }
            OFFSET = offset;
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError("this JCuda version hides its native pointers: " + e);
        }
    }

    private Native() {
    }

    /** The address a JCuda pointer or handle stands for (base plus byte offset). */
    static long address(NativePointerObject p) {
        try {
            long base = POINTER.getLong(p);
            return OFFSET != null && p instanceof jcuda.Pointer ? base + OFFSET.getLong(p) : base;
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }
}
