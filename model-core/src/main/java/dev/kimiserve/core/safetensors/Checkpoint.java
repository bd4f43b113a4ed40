package dev.kimiserve.core.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimiserve.core.ModelFormatException;
import dev.kimiserve.core.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * All tensors of a model directory: one {@code model.safetensors}, or the shards listed by
 * {@code model.safetensors.index.json} (Hugging Face layout). Each shard is memory-mapped once.
 */
public final class Checkpoint implements AutoCloseable {
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private final Path directory;
    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile> owner;

    private Checkpoint(Path directory, List<SafetensorsFile> files, Map<String, SafetensorsFile> owner) {
        this.directory = directory;
        this.files = files;
        this.owner = owner;
    }

    public static Checkpoint open(Path directory) {
        Path index = directory.resolve(INDEX_FILE);
        if (Files.isRegularFile(index)) {
            return openSharded(directory, index);
        }
        Path single = directory.resolve(SINGLE_FILE);
        if (Files.isRegularFile(single)) {
            SafetensorsFile f = SafetensorsFile.open(single);
            Map<String, SafetensorsFile> owner = new LinkedHashMap<>();
            f.tensors().keySet().forEach(n -> owner.put(n, f));
            return new Checkpoint(directory, List.of(f), owner);
        }
        throw ModelFormatException.of(directory, "no " + SINGLE_FILE + " and no " + INDEX_FILE + " in this directory");
    }

    private static Checkpoint openSharded(Path directory, Path index) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(index.toFile());
        } catch (IOException e) {
            throw ModelFormatException.of(index, "not valid JSON: " + e.getMessage(), e);
        }
        JsonNode weightMap = root == null ? null : root.get("weight_map");
        if (weightMap == null || !weightMap.isObject()) {
            throw ModelFormatException.of(index, "field 'weight_map' is missing or not an object");
        }
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        Map<String, SafetensorsFile> owner = new LinkedHashMap<>();
        List<SafetensorsFile> opened = new ArrayList<>();
        try {
            for (Iterator<Map.Entry<String, JsonNode>> it = weightMap.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String shardName = e.getValue().asText();
                Path shardPath = directory.resolve(shardName).normalize();
                if (!shardPath.startsWith(directory.normalize()) || shardName.isBlank()) {
                    throw ModelFormatException.of(index, "weight_map entry '" + e.getKey() + "' names a file outside the directory: " + shardName);
                }
                SafetensorsFile shard = shards.get(shardName);
                if (shard == null) {
                    if (!Files.isRegularFile(shardPath)) {
                        throw ModelFormatException.of(index, "weight_map entry '" + e.getKey() + "' names missing shard " + shardName);
                    }
                    shard = SafetensorsFile.open(shardPath);
                    shards.put(shardName, shard);
                    opened.add(shard);
                }
                if (!shard.contains(e.getKey())) {
                    throw ModelFormatException.of(shardPath, "tensor '" + e.getKey() + "' listed in " + INDEX_FILE + " is not in this shard");
                }
                owner.put(e.getKey(), shard);
            }
            for (SafetensorsFile shard : opened) {
                for (String name : shard.tensors().keySet()) {
                    SafetensorsFile prev = owner.get(name);
                    if (prev != null && prev != shard) {
                        throw ModelFormatException.of(shard.path(), "tensor '" + name + "' is also in " + prev.path().getFileName());
                    }
                    owner.putIfAbsent(name, shard);
                }
            }
        } catch (RuntimeException e) {
            opened.forEach(SafetensorsFile::close);
            throw e;
        }
        return new Checkpoint(directory, List.copyOf(opened), owner);
    }

    public Path directory() {
        return directory;
    }

    public Set<String> names() {
        return Collections.unmodifiableSet(owner.keySet());
    }

    public boolean contains(String name) {
        return owner.containsKey(name);
    }

    public TensorInfo info(String name) {
        SafetensorsFile f = owner.get(name);
        if (f == null) {
            throw ModelFormatException.of(directory, "no tensor named '" + name + "'");
        }
        return f.tensors().get(name);
    }

    public Tensor tensor(String name) {
        SafetensorsFile f = owner.get(name);
        if (f == null) {
            throw ModelFormatException.of(directory, "no tensor named '" + name + "'");
        }
        return f.tensor(name);
    }

    /** The file that holds a tensor (for error messages). */
    public Path fileOf(String name) {
        SafetensorsFile f = owner.get(name);
        return f == null ? directory : f.path();
    }

    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
    }
}
