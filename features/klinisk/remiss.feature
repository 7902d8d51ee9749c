# language: sv
@criterion:clin-referral @needs:web_base @needs:fhir_base @needs:legacy_base @needs:bridge_base @writes @per_site
Egenskap: Remisser över samexistensgränsen i webbklienten
  Under samexistensen går remisser mellan enheter i den nya journalen och enheter som ännu
  arbetar i det äldre journalsystemet. Det som skrivs ska komma fram byte för byte: nekande
  ord som "inte", "ingen", "inget" och "ej", och bokstäverna å, ä och ö, har fallit bort
  i verkliga driftstarter. Varje remiss får en sista rad "Ref …" så att den går att hitta
  i mottagarens inkorg. Den andra sidan (det äldre journalsystemet) kvitterar och svarar
  genom sitt eget gränssnitt.

  @route:new-to-legacy
  @id:klin-referral-01
  Scenario: En remiss till det äldre journalsystemet besvaras och svaret kommer fram ordagrant
    Givet att en användare på platsen är inloggad i webbklienten
    När användaren söker fram platsens testpatient
    Och skickar en remiss till platsens mottagare i det äldre journalsystemet med frågeställningen:
      """
      Ingen känd läkemedelsallergi. Patienten är inte gravid och har ej feber.
      Smärta i höger knä sedan två veckor, inget trauma – önskar bedömning av ortoped.
      """
    Så kommer remissen fram till det äldre journalsystemet med frågeställningen ordagrant
    När mottagaren i det äldre journalsystemet kvitterar och besvarar remissen med:
      """
      Bedömd. Ingen fraktur och inget tecken på infektion; knät är inte svullet.
      Ej behov av operation – åtgärd: sjukgymnastik, återbesök vid försämring.
      """
    Så visas svaret i webbklienten ordagrant som det skrevs

  @route:legacy-to-new
  @id:klin-referral-02
  Scenario: En remiss från det äldre journalsystemet besvaras i webbklienten och svaret kommer fram ordagrant
    Givet att en användare på platsen är inloggad i webbklienten
    När platsens enhet i det äldre journalsystemet remitterar platsens testpatient till platsen med frågeställningen:
      """
      Önskar övertag av fortsatt vård. Patienten är inte längre i behov av gips;
      ingen smärta i vila, ej svullnad. Inget kvarstående sår att lägga om.
      """
    Så syns remissen i platsens inkorg med frågeställningen ordagrant
    När användaren öppnar remissen, kvitterar och besvarar den med:
      """
      Övertag accepterat. Ingen ytterligare röntgen behövs och inget uppföljande besök på
      ortopeden är planerat; patienten är inte sjukskriven. Ej åtgärd i dag.
      """
    Så kommer svaret fram till det äldre journalsystemet ordagrant som det skrevs
