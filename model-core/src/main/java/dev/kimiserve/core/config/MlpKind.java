package dev.kimiserve.core.config;

/** The feed-forward block of a decoder layer. */
public enum MlpKind {
    /** One SwiGLU MLP of width {@code intermediate_size} ("dense"). */
    DENSE,
    /** Routed experts plus shared experts ("sparse"). */
    MOE
}
