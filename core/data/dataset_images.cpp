// Image files: class folders, flat folders with a labels CSV file, single images.
#include "data/dataset_detail.h"

#include "common/error.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>
#include <set>

namespace qe::dataset_detail {

namespace fs = std::filesystem;

namespace {

struct ImageEntry {
    fs::path path;
    std::string name;
    int label = -1;
};

class ImageFilesDataset final : public Dataset {
public:
    ImageFilesDataset(std::vector<ImageEntry> entries, std::vector<std::string> classNames, std::string description)
        : entries_(std::move(entries)), classNames_(std::move(classNames)), description_(std::move(description))
    {
    }

    std::size_t size() const override { return entries_.size(); }

    cv::Mat image(std::size_t index) const override
    {
        checkIndex(*this, index);
        return decodeImage(entries_[index].path);
    }

    int label(std::size_t index) const override
    {
        checkIndex(*this, index);
        return entries_[index].label;
    }

    std::string imageName(std::size_t index) const override
    {
        checkIndex(*this, index);
        return entries_[index].name;
    }

    std::string description() const override { return description_; }
    std::vector<std::string> classNames() const override { return classNames_; }

private:
    std::vector<ImageEntry> entries_;
    std::vector<std::string> classNames_;
    std::string description_;
};

std::vector<fs::path> listImages(const fs::path& folder)
{
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
        std::error_code typeError;
        if (entry.is_regular_file(typeError) && isImageFile(entry.path()) && !isHidden(entry.path()))
            files.push_back(entry.path());
    }
    if (ec)
        throw Error(folder.string() + ": cannot list the folder (" + ec.message() + ")");
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace

std::vector<fs::path> listSubfolders(const fs::path& folder)
{
    std::vector<fs::path> folders;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
        std::error_code typeError;
        if (entry.is_directory(typeError) && !isHidden(entry.path()))
            folders.push_back(entry.path());
    }
    if (ec)
        throw Error(folder.string() + ": cannot list the folder (" + ec.message() + ")");
    std::sort(folders.begin(), folders.end());
    return folders;
}

// One CSV line into fields; quoted fields may contain commas and doubled quotes.
std::vector<std::string> splitCsvLine(const std::string& line, const std::string& where)
{
    std::vector<std::string> fields;
    std::string field;
    bool quoted = false;
    bool wasQuoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                field += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                field += c;
            }
        } else if (c == '"') {
            quoted = true;
            wasQuoted = true;
        } else if (c == ',') {
            fields.push_back(wasQuoted ? field : trim(field));
            field.clear();
            wasQuoted = false;
        } else {
            field += c;
        }
    }
    if (quoted)
        throw Error(where + ": unterminated quoted field");
    fields.push_back(wasQuoted ? field : trim(field));
    return fields;
}

// A spreadsheet program's UTF-8 byte order mark before a labels file's header.
void dropByteOrderMark(std::string& firstLine)
{
    if (firstLine.rfind("\xEF\xBB\xBF", 0) == 0)
        firstLine.erase(0, 3);
}

// A header that names a label column: "label", "label_1001", "Label" ...
bool isLabelColumn(const std::string& header) { return lower(header).rfind("label", 0) == 0; }

namespace {

std::optional<std::size_t> findColumn(const std::vector<std::string>& header, std::initializer_list<const char*> names)
{
    for (const char* name : names)
        for (std::size_t i = 0; i < header.size(); ++i)
            if (lower(header[i]) == name)
                return i;
    return std::nullopt;
}

std::optional<int> parseInt(const std::string& text)
{
    int value = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end || text.empty())
        return std::nullopt;
    return value;
}

struct LabelsFile {
    std::vector<ImageEntry> entries;  // in the row order of the file
    std::vector<std::string> classNames;
};

// Rows name files in `folder`; `files` are the images found there.
LabelsFile readLabelsCsv(const fs::path& csvPath, const fs::path& folder, const std::string& labelColumnName)
{
    std::ifstream in(csvPath, std::ios::binary);
    if (!in)
        throw Error(csvPath.string() + ": cannot open the labels file");
    const std::string csv = csvPath.string();
    auto where = [&](int line) { return csv + " line " + std::to_string(line); };

    std::vector<std::string> header;
    std::optional<std::size_t> fileColumn, labelColumn, nameColumn;
    std::map<std::string, int> seen;  // file name -> line, to report duplicates
    std::map<int, std::string> names;
    LabelsFile result;
    std::string line;
    int lineNumber = 0;
    while (std::getline(in, line)) {
        ++lineNumber;
        if (lineNumber == 1)
            dropByteOrderMark(line);
        if (trim(line).empty())
            continue;
        std::vector<std::string> fields = splitCsvLine(line, where(lineNumber));

        if (header.empty()) {
            header = std::move(fields);
            fileColumn = findColumn(header, {"file", "filename", "image"}).value_or(0);
            if (!labelColumnName.empty()) {
                labelColumn = findColumn(header, {labelColumnName.c_str()});
                if (!labelColumn)
                    throw Error(where(lineNumber) + ": no column named \"" + labelColumnName + "\" in the header");
            }
            if (!labelColumn)
                labelColumn = findColumn(header, {"label"});
            for (std::size_t i = 0; i < header.size() && !labelColumn; ++i)
                if (isLabelColumn(header[i]))
                    labelColumn = i;
            if (!labelColumn)
                labelColumn = 1;
            if (header.size() <= std::max(*fileColumn, *labelColumn))
                throw Error(where(lineNumber) + ": the header needs a file name column and a label column, e.g. "
                                                "\"file,label\"");
            if (parseInt(header[*labelColumn]))
                throw Error(where(lineNumber) + ": \"" + header[*labelColumn] +
                            "\" looks like a label, but the first row must be a header such as \"file,label\"");
            nameColumn = findColumn(header, {"class", "class_name", "description"});
            continue;
        }

        if (fields.size() <= std::max(*fileColumn, *labelColumn))
            throw Error(where(lineNumber) + ": " + std::to_string(fields.size()) + " columns, expected at least " +
                        std::to_string(std::max(*fileColumn, *labelColumn) + 1));
        const std::string& file = fields[*fileColumn];
        const std::string& labelText = fields[*labelColumn];
        const auto label = parseInt(labelText);
        if (!label || *label < -1)
            throw Error(where(lineNumber) + ": label '" + labelText + "' is not an integer >= 0 (or -1 for unknown)");
        const fs::path imagePath = folder / file;
        std::error_code ec;
        if (file.empty() || !fs::is_regular_file(imagePath, ec))
            throw Error(where(lineNumber) + ": image '" + file + "' (column \"" + header[*fileColumn] +
                        "\") not found in " + folder.string());
        if (const auto [it, inserted] = seen.emplace(file, lineNumber); !inserted)
            throw Error(where(lineNumber) + ": image '" + file + "' is listed twice (first on line " +
                        std::to_string(it->second) + ")");
        if (nameColumn && *label >= 0 && *nameColumn < fields.size() && !fields[*nameColumn].empty())
            names.emplace(*label, fields[*nameColumn]);
        result.entries.push_back({imagePath, file, *label});
    }
    if (header.empty())
        throw Error(csv + ": empty; expected a header row such as \"file,label\" and one row per image");

    // Class names are known only where rows name them; the other indices keep their number. A label
    // far beyond any real class count would make that list absurd, so then there are no names.
    constexpr int kMaxNamedClasses = 100000;
    if (!names.empty() && names.rbegin()->first < kMaxNamedClasses) {
        const int count = names.rbegin()->first + 1;
        for (int i = 0; i < count; ++i) {
            const auto it = names.find(i);
            result.classNames.push_back(it != names.end() ? it->second : std::to_string(i));
        }
    }
    return result;
}

}  // namespace

// The labels CSV of a flat image folder: `labelsPath`, else labels.csv inside it.
std::optional<fs::path> labelsCsvOf(const fs::path& folder, const std::optional<fs::path>& labelsPath)
{
    if (labelsPath)
        return labelsPath;
    std::error_code ec;
    if (fs::is_regular_file(folder / "labels.csv", ec))
        return folder / "labels.csv";
    return std::nullopt;
}

std::unique_ptr<Dataset> openFlatFolder(const fs::path& folder, const std::optional<fs::path>& labelsPath,
                                        const std::string& labelColumn)
{
    const std::vector<fs::path> files = listImages(folder);
    const std::optional<fs::path> csv = labelsCsvOf(folder, labelsPath);
    if (!csv) {
        if (files.empty())
            throw Error(folder.string() + ": no PNG, JPEG or BMP images found");
        std::vector<ImageEntry> entries;
        for (const auto& file : files)
            entries.push_back({file, file.filename().string(), -1});
        return std::make_unique<ImageFilesDataset>(std::move(entries), std::vector<std::string>{},
                                                   "image folder " + folder.filename().string() + " (" +
                                                       std::to_string(files.size()) + " images, no labels)");
    }

    LabelsFile labels = readLabelsCsv(*csv, folder, labelColumn);
    // The labels file decides the order (it is often shuffled on purpose); unlisted images follow.
    std::set<std::string> listed;
    for (const auto& entry : labels.entries)
        listed.insert(entry.name);
    for (const auto& file : files)
        if (!listed.count(file.filename().string()))
            labels.entries.push_back({file, file.filename().string(), -1});
    if (labels.entries.empty())
        throw Error(folder.string() + ": no PNG, JPEG or BMP images found (labels file " + csv->string() + ")");
    const std::string description = "image folder " + folder.filename().string() + " (" +
                                    std::to_string(labels.entries.size()) + " images, labels " +
                                    csv->filename().string() + ")";
    return std::make_unique<ImageFilesDataset>(std::move(labels.entries), std::move(labels.classNames), description);
}

std::unique_ptr<Dataset> openClassFolders(const fs::path& folder, const std::vector<fs::path>& classFolders)
{
    std::vector<ImageEntry> entries;
    std::vector<std::string> classNames;
    for (const auto& classFolder : classFolders) {
        const int label = static_cast<int>(classNames.size());
        const std::string className = classFolder.filename().string();
        classNames.push_back(className);
        for (const auto& file : listImages(classFolder))
            entries.push_back({file, className + "/" + file.filename().string(), label});
    }
    if (entries.empty())
        throw Error(folder.string() + ": no PNG, JPEG or BMP images found in the class subfolders");
    const std::string description = "class folders " + folder.filename().string() + " (" +
                                    std::to_string(entries.size()) + " images, " +
                                    std::to_string(classNames.size()) + " classes)";
    return std::make_unique<ImageFilesDataset>(std::move(entries), std::move(classNames), description);
}

std::unique_ptr<Dataset> openSingleImage(const fs::path& image)
{
    return std::make_unique<ImageFilesDataset>(std::vector<ImageEntry>{{image, image.filename().string(), -1}},
                                               std::vector<std::string>{}, "image " + image.filename().string());
}

}  // namespace qe::dataset_detail
