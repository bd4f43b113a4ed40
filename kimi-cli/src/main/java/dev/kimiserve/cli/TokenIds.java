package dev.kimiserve.cli;

import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** Parses "5,9,13" into token ids. */
final class TokenIds implements ITypeConverter<TokenIds.IdList> {
    /** A parsed list of token ids. */
    record IdList(int[] ids) {
    }

    @Override
    public IdList convert(String value) {
        String[] parts = value.trim().split("\\s*,\\s*");
        if (value.isBlank()) {
            throw new TypeConversionException("empty list of token ids");
        }
        int[] ids = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                ids[i] = Integer.parseInt(parts[i]);
            } catch (NumberFormatException e) {
                throw new TypeConversionException("'" + parts[i] + "' is not a token id (expected comma-separated integers like 5,9,13)");
            }
            if (ids[i] < 0) {
                throw new TypeConversionException("token id " + ids[i] + " is negative");
            }
        }
        return new IdList(ids);
    }

    static String join(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ids.length; i++) {
            if (i > 0) {
                sb.append(',');
            }
            sb.append(ids[i]);
        }
        return sb.toString();
    }
}
