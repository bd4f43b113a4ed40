package dev.kimiserve.core.config;

/** The token mixer of a decoder layer. */
public enum LayerKind {
    /** Kimi Delta Attention: linear attention with a fixed-size recurrent state ("linear_attention"). */
    KDA,
    /** Multi-head latent attention with NoPE: full attention over a latent cache that grows with context ("full_attention"). */
    MLA
}
